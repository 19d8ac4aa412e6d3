"""The ledger's job control on the real PostgreSQL, through each driver
(psycopg 3 and psycopg2): scheduled jobs and the due pass, cancel, bulk
cancel and retry, the claim that skips cancelled jobs; enqueue in the
caller's transaction; and a kind's policy (timeout, RetryLater,
max_attempts) with the worker's runner driven directly.
tests/e2e/test_job_control.py runs the same over the real processes."""
import importlib
import os
import sys
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
import redis
from sqlalchemy import text

import ledger
from tests.settings import DATABASE_URL, DRIVERS, with_driver

BROKER_URL = os.environ.get('TEST_CONTROL_BROKER_URL', 'redis://127.0.0.1:6379/7')
GENRE = {'name': 'rock', 'description': 'loud'}


@pytest.fixture(scope='module')
def broker():
    client = redis.Redis.from_url(BROKER_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture(params=DRIVERS)
def app(request, broker):
    """A service app on the test database through one driver, tables empty."""
    from service import create_app
    made = create_app(config={'SQLALCHEMY_DEFAULT': with_driver(DATABASE_URL, request.param),
                              'CELERY_BROKER_URL': BROKER_URL, 'FLASK_API_TOKENS': ''})
    with made.app_context():
        made.extensions['pg'].syncdb()
        made.extensions['pg'].cleandb()
    broker.flushdb()
    with made.app_context():
        yield made


def session(app):
    return app.extensions['pg'].pool.connection().session


def sql(app, statement, **params):
    with app.extensions['pg'].pool.connection().engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return result.fetchall() if result.returns_rows else None


def status(app, job_id):
    return sql(app, 'SELECT status FROM jobs WHERE id = :i', i=job_id)[0][0]


def schedule(app, seconds, count=1, kind='genre.create'):
    run_at = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    ids, _ = ledger.record(session(app), kind, [GENRE] * count, run_at=run_at)
    session(app).commit()
    return ids


def test_scheduled_jobs_wait_and_each_due_one_is_taken_once(app):
    due = schedule(app, -1, count=3)
    later = schedule(app, 60)
    assert {status(app, i) for i in due + later} == {'scheduled'}
    engine = app.extensions['pg'].pool.connection().engine
    with engine.connect() as other_beat:
        # Another beat holds the first due job: the pass skips it, takes the rest.
        other_beat.execute(text('SELECT id FROM jobs WHERE id = :i FOR UPDATE'), {'i': due[0]})
        assert ledger.take_due(session(app), 100) == {'genre.create': due[1:]}
        other_beat.rollback()
    assert ledger.take_due(session(app), 100) == {'genre.create': due[:1]}
    assert ledger.take_due(session(app), 100) == {}
    assert status(app, later[0]) == 'scheduled'
    # Messages refused by the broker: the jobs go back to wait for the next pass.
    sql(app, "UPDATE jobs SET run_at = now() - interval '1 s' WHERE id = :i", i=later[0])
    taken = ledger.take_due(session(app), 100)['genre.create']
    ledger.return_due(session(app), taken)
    assert status(app, later[0]) == 'scheduled'


def test_a_cancelled_job_is_never_claimed_and_a_claimed_one_is_not_cancelled(app):
    ids, _ = ledger.record(session(app), 'genre.create', [GENRE, GENRE])
    session(app).commit()
    scheduled = schedule(app, 60)[0]
    ledger.cancel(session(app), ids[0])
    ledger.cancel(session(app), scheduled)
    claimed = ledger.claim(session(app), ids + [scheduled])
    assert list(claimed) == [ids[1]] and claimed[ids[1]][0] == 1
    assert status(app, ids[0]) == status(app, scheduled) == 'cancelled'
    with pytest.raises(ledger.WrongStatus, match='running'):
        ledger.cancel(session(app), ids[1])
    with pytest.raises(ledger.WrongStatus, match='cancelled'):
        ledger.cancel(session(app), ids[0])
    with pytest.raises(ledger.JobNotFound):
        ledger.cancel(session(app), 10**12)


def test_bulk_cancel_and_retry_change_only_what_matches(app):
    old = schedule(app, 60, count=2)
    cut = sql(app, 'SELECT clock_timestamp()')[0][0]
    new = schedule(app, 60, count=2)
    queued, _ = ledger.record(session(app), 'user.credit', [{'user_id': 1, 'amount': 1}])
    session(app).commit()
    assert ledger.cancel_matching(session(app), kind='genre.create', created_before=cut) == 2
    assert ledger.cancel_matching(session(app), ('scheduled',), kind='user.credit') == 0
    assert [status(app, i) for i in old + new + queued] == [
        'cancelled', 'cancelled', 'scheduled', 'scheduled', 'queued']
    with pytest.raises(ledger.LedgerError):
        ledger.cancel_matching(session(app), ('running',))

    def refused(by_kind):
        raise ConnectionError('broker down')
    with pytest.raises(ConnectionError):
        ledger.retry_matching(session(app), refused, ('cancelled',))
    assert [status(app, i) for i in old] == ['cancelled', 'cancelled']  # put back
    sent = []
    count, left = ledger.retry_matching(session(app), sent.append, ('cancelled',),
                                        check=lambda kind, payload: kind == 'genre.create')
    assert (count, left, sent) == (2, 0, [{'genre.create': old}])
    assert sql(app, 'SELECT status, attempts, finished_at FROM jobs WHERE id = :i', i=old[0]) == [
        ('queued', 0, None)]


def test_a_job_put_back_to_wait_is_rescheduled_with_its_reason(app):
    ids, _ = ledger.record(session(app), 'genre.create', [GENRE])
    session(app).commit()
    ledger.claim(session(app), ids)
    assert ledger.reschedule(session(app), ids[0], 30, 'not yet')
    assert sql(app, "SELECT status, error, run_at > now() + interval '20 s' FROM jobs "
                    'WHERE id = :i', i=ids[0]) == [('scheduled', 'not yet', True)]
    assert not ledger.reschedule(session(app), ids[0], 30, 'again')  # not running


# Enqueue in the caller's transaction.

def test_enqueue_publishes_after_the_commit_and_nothing_after_a_rollback(app, broker):
    from service.enqueue import enqueue
    from tasks.music import Genre
    job_id = enqueue('genre.create', GENRE)
    Genre(name='own row', description='x').add()
    assert broker.llen('jobs') == 0  # not before the commit
    session(app).commit()
    assert broker.llen('jobs') == 1 and status(app, job_id) == 'queued'

    dropped = enqueue('genre.create', GENRE)
    Genre(name='rolled back', description='x').add()
    session(app).rollback()
    session(app).commit()  # a later commit publishes nothing of the rolled back one
    assert broker.llen('jobs') == 1
    assert sql(app, 'SELECT count(*) FROM jobs WHERE id = :i', i=dropped) == [(0,)]
    assert sql(app, "SELECT count(*) FROM genre WHERE name = 'rolled back'") == [(0,)]


def test_enqueue_checks_the_payload_before_writing_and_keys_repeat_nothing(app, broker):
    from service.enqueue import EnqueueError, enqueue, in_seconds
    from tasks import KindError
    with pytest.raises(EnqueueError, match='/name') as refused:
        enqueue('genre.create', {'name': 1})
    assert isinstance(refused.value, KindError) and refused.value.errors
    with pytest.raises(EnqueueError, match='unknown job kind'):
        enqueue('no.such', {})
    with pytest.raises(EnqueueError, match='time zone'):
        enqueue('genre.create', GENRE, run_at=datetime.now())
    with pytest.raises(EnqueueError, match='72 bytes'):  # the kind's prepare, as the API's
        enqueue('user.create', {'username': 'u', 'email': 'u@example.com', 'password': 'é' * 40})
    session(app).commit()
    assert sql(app, 'SELECT count(*) FROM jobs') == [(0,)]

    first = enqueue('genre.create', GENRE, key='once')
    session(app).commit()
    assert enqueue('genre.create', GENRE, key='once') == first
    with pytest.raises(ledger.IdempotencyConflict):
        enqueue('genre.create', {**GENRE, 'name': 'other'}, key='once')
    later = enqueue('genre.create', GENRE, run_at=in_seconds(60))
    session(app).commit()
    assert broker.llen('jobs') == 1  # the scheduled one waits for beat
    assert status(app, later) == 'scheduled'


# A kind's policy, the worker's runner driven directly (in this thread: the alarm works).

class Task:
    """What run_job uses of a bound Celery task; retries are recorded."""

    def __init__(self):
        self.request = SimpleNamespace(retries=0)
        self.retried = []

    def apply_async(self, args, countdown, **routing):
        self.retried.append((args[0], routing))

    def retry(self, countdown, exc):
        self.retried.append(exc)
        return RuntimeError('retried')


@pytest.fixture
def control_kinds():
    """The test kinds registered in this process, for this test only."""
    from tasks import REGISTRY
    before = set(REGISTRY)
    sys.modules.pop('tests.control_kinds', None)
    importlib.import_module('tests.control_kinds')
    yield
    for name in set(REGISTRY) - before:
        REGISTRY.pop(name)
    sys.modules.pop('tests.control_kinds', None)


def user(app):
    return sql(app, "INSERT INTO users (username, is_active, credit_score) "
                    "VALUES ('u', false, 0) RETURNING id")[0][0]


def run(app, kind, payload):
    from worker.execution import JobsFailed, run_job
    ids, _ = ledger.record(session(app), kind, [payload])
    session(app).commit()
    task = Task()
    try:
        run_job(task, ids[0])
    except (RuntimeError, JobsFailed):  # retried, or failed: the ledger says which
        pass
    return ids[0], task


def lock_is_free(app, user_id):
    with app.extensions['pg'].pool.connection().engine.connect() as conn:
        conn.execute(text("SET lock_timeout = '200ms'"))
        conn.execute(text('SELECT id FROM users WHERE id = :i FOR UPDATE'), {'i': user_id})
        return True


@pytest.mark.parametrize('kind', ['control.sql_sleep', 'control.hold'])
def test_a_handler_past_its_timeout_is_stopped_and_its_locks_released(app, control_kinds, kind):
    user_id = user(app)
    job_id, task = run(app, kind, {'user_id': user_id, 'seconds': 5})
    assert lock_is_free(app, user_id)
    found = sql(app, 'SELECT status, attempts, error FROM jobs WHERE id = :i', i=job_id)[0]
    if kind == 'control.sql_sleep':  # max_attempts=1: failed with the reason
        assert found == ('failed', 1, 'gave up after 1 attempts: timed out after 1 s')
    else:  # max_attempts=2: queued again for its second attempt
        assert found == ('queued', 1, 'timed out after 1 s') and len(task.retried) == 1


def test_retry_later_puts_the_job_back_to_wait_until_its_attempts_are_spent(app, control_kinds):
    until = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    job_id, _ = run(app, 'control.later', {'until': until})
    assert sql(app, 'SELECT status, attempts, error FROM jobs WHERE id = :i', i=job_id) == [
        ('scheduled', 1, 'not yet')]
    from worker.execution import JobsFailed, run_job
    sql(app, "UPDATE jobs SET status = 'queued', attempts = 4 WHERE id = :i", i=job_id)
    with pytest.raises(JobsFailed, match='not yet'):
        run_job(Task(), job_id)  # the 5th attempt of 5
    assert sql(app, 'SELECT status, error FROM jobs WHERE id = :i', i=job_id) == [
        ('failed', 'gave up after 5 attempts: not yet')]
