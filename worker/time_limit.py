"""A kind's timeout: the job's SQL statements are cancelled by PostgreSQL
past it (statement_timeout, local to the job's transaction), and its Python
code is interrupted a moment later (SIGALRM, raising JobTimeout)."""
import signal
import threading
from contextlib import contextmanager

from sqlalchemy import text

from pg.exceptions import translate
from tasks import JobTimeout

STATEMENT_TIMEOUT = text("SELECT set_config('statement_timeout', :ms, true)")
# The alarm comes this long after the statement timeout: a handler waiting on
# SQL is stopped by PostgreSQL (cleanly, the connection stays usable), not
# interrupted mid-protocol by the signal.
ALARM_GRACE_SECONDS = 0.25


@contextmanager
def time_limit(session, seconds):
    """Around a job's effect, at the start of its transaction: nothing when
    `seconds` is None. The alarm needs the main thread (Celery's prefork and
    solo pools run tasks there); elsewhere PostgreSQL's limit stands alone."""
    if seconds is None:
        yield
        return
    with translate():
        session.execute(STATEMENT_TIMEOUT, {'ms': str(max(1, int(seconds * 1000)))})
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum, frame):
        raise JobTimeout(f'timed out after {seconds:g} s')

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds + ALARM_GRACE_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
