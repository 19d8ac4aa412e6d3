"""Scheduled jobs: beat's due pass takes those whose time has come, and a
handler's RetryLater puts its job back to wait (reschedule)."""
from sqlalchemy import text

from ledger.model import IN_IDS, Status, in_ids
from pg.exceptions import translate

# SKIP LOCKED: two beats (or two passes) never take one job twice; through
# the partial index of scheduled jobs, by due time.
DUE = text('''
UPDATE jobs SET status = :queued, updated_at = now() WHERE id IN (
    SELECT id FROM jobs WHERE status = :scheduled AND run_at <= now()
    ORDER BY run_at LIMIT :limit
    FOR UPDATE SKIP LOCKED)
RETURNING id, kind
''')

RESCHEDULE = text('''
UPDATE jobs SET status = :scheduled, error = :error, updated_at = now(),
                run_at = clock_timestamp() + make_interval(secs => :seconds)
WHERE id = :id AND status = :running
''')


def take_due(session, limit):
    """Queue (committed) up to `limit` scheduled jobs whose run_at has come,
    the most overdue first; return {kind: ids} for the caller to publish. A
    crash before they are published leaves them queued without a message:
    the recovery sweep publishes them."""
    with translate():
        rows = session.execute(DUE, {'queued': Status.QUEUED, 'scheduled': Status.SCHEDULED,
                                     'limit': limit}).all()
        session.commit()
    by_kind = {}
    for job_id, kind in sorted(rows):
        by_kind.setdefault(kind, []).append(job_id)
    return by_kind


def reschedule(session, job_id, seconds, reason):
    """Put a running job back to wait `seconds` (its attempt counted), with
    `reason` as its note; committed. False if it was not running."""
    with translate():
        done = session.execute(RESCHEDULE, {
            'id': job_id, 'seconds': float(seconds), 'error': str(reason)[:2000],
            'scheduled': Status.SCHEDULED, 'running': Status.RUNNING}).rowcount
        session.commit()
    return bool(done)


UNQUEUE = text(f'''
UPDATE jobs SET status = :scheduled, updated_at = now()
WHERE {IN_IDS} AND status = :queued
''')


def return_due(session, job_ids):
    """Put jobs taken by take_due back to wait (committed) when their
    messages could not be sent: the next due pass takes them again. Jobs a
    worker took meanwhile (some messages went) are left alone."""
    with translate():
        session.rollback()
        session.execute(UNQUEUE, {**in_ids(job_ids), 'queued': Status.QUEUED,
                                  'scheduled': Status.SCHEDULED})
        session.commit()
