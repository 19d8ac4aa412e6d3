"""The recovery sweep against the real database and broker (no worker runs)."""
from sqlalchemy import text

from tests.integration.jobs import GENRE
from tests.integration.service import service_fixtures
from tests.queued_messages import published_ids
from tests.settings import redis_url
from worker.sweep import republish_stale

BROKER_URL = redis_url(11)

broker, make_app, clean, app, client = service_fixtures(BROKER_URL)


def _age(app, job_id, status, seconds):
    """As if the job had been accepted, and last changed, `seconds` ago."""
    from ledger import Job
    with app.app_context():
        Job.objects.raw_sql(
            'UPDATE jobs SET status = :s, created_at = now() - make_interval(secs => :a), '
            'updated_at = now() - make_interval(secs => :a) WHERE id = :i',
            s=status, a=seconds, i=job_id)
        app.extensions['pg'].pool.commit()


def _status(app, job_id):
    from ledger import Job
    with app.app_context():
        return Job.objects.raw_sql('SELECT status FROM jobs WHERE id = :i', i=job_id).scalar()


def test_sweep_republishes_only_what_is_stale_and_unlocked(app, client, broker):
    ids = [client.post('/jobs/genre.create', json=GENRE).json['id'] for _ in range(4)]
    old_queued, young_queued, dead_running, live_running = ids
    _age(app, old_queued, 'queued', 100)
    _age(app, dead_running, 'running', 100)
    _age(app, live_running, 'running', 100)
    broker.delete('jobs')
    engine = app.extensions['pg'].pool.connection().engine
    with engine.connect() as worker_alive:
        worker_alive.execute(text('SELECT id FROM jobs WHERE id = :i FOR UPDATE'),
                             {'i': live_running})
        with app.app_context():
            assert republish_stale(queued_age=10, running_age=10) == 2
        worker_alive.rollback()
    assert published_ids(broker) == sorted([old_queued, dead_running])
    assert broker.llen('jobs') == 1  # one message for the group
    assert _status(app, dead_running) == 'queued'
    assert _status(app, live_running) == 'running'
    with app.app_context():
        assert republish_stale(queued_age=10, running_age=10) == 1  # the live one, now unlocked
        assert republish_stale(queued_age=10, running_age=10) == 0  # updated_at was refreshed


def test_queued_jobs_whose_message_waits_are_left_alone(app, client, broker):
    """A backlog 100 s old: its jobs' messages wait, nothing is published again."""
    waiting, behind = [client.post('/jobs/genre.create', json=GENRE).json['id'] for _ in range(2)]
    _age(app, waiting, 'queued', 100)
    _age(app, behind, 'queued', 100)
    with app.app_context():
        assert republish_stale(queued_age=10, running_age=10) == 0  # their messages wait
    broker.delete('jobs')
    with app.app_context():
        assert republish_stale(queued_age=10, running_age=10) == 2


def test_a_lost_message_is_found_behind_a_backlog(app, client, broker):
    """A job older than the oldest message waiting, whose message no worker
    holds, lost its message (a worker killed between fetch and record):
    published again without waiting for the queue to empty."""
    import ledger
    lost, held = [client.post('/jobs/genre.create', json=GENRE).json['id'] for _ in range(2)]
    broker.delete('jobs')
    _age(app, lost, 'queued', 30)
    _age(app, held, 'queued', 30)
    backlog = [client.post('/jobs/genre.create', json=GENRE).json['id'] for _ in range(3)]
    with app.app_context():
        session = app.extensions['pg'].pool.connection().session
        oldest = [backlog[0]]
        assert ledger.take_stale(session, queued_age=10, running_age=60, limit=10, lost_age=5,
                                 held=[held], oldest=oldest) == {'genre.create': [lost]}
        assert republish_stale(queued_age=10, running_age=60) == 1  # held: its message is nowhere
    assert published_ids(broker) == sorted([*backlog, held])


def _rows_read(plan):
    """Rows of `jobs` an EXPLAIN ANALYZE plan (JSON) read: those its scans
    returned and those they passed over, every loop."""
    read = 0
    if plan.get('Relation Name') == 'jobs':
        read += (plan['Actual Rows'] + plan.get('Rows Removed by Filter', 0)
                 + plan.get('Rows Removed by Index Recheck', 0)) * plan['Actual Loops']
    return read + sum(_rows_read(child) for child in plan.get('Plans', ()))


def test_the_sweep_reads_the_lost_jobs_not_the_backlog_behind_them(app, client, broker):
    """3,000 queued jobs whose messages wait behind the oldest one, and two
    lost before it: the sweep takes the two, reading a few rows, not the
    backlog (which it read whole each time, every 2 s, when the index of
    unfinished jobs was looked into by status alone)."""
    import ledger
    from ledger.sweep import STALE, stale_parameters
    lost = [client.post('/jobs/genre.create', json=GENRE).json['id'] for _ in range(2)]
    for job_id in lost:
        _age(app, job_id, 'queued', 100)
    with app.app_context():
        session = app.extensions['pg'].pool.connection().session
        backlog = session.execute(text(
            "INSERT INTO jobs (kind, payload, status, attempts, created_at, updated_at) "
            "SELECT 'genre.create', '{}', 'queued', 0, now() - interval '60 s', "
            "now() - interval '60 s' FROM generate_series(1, 3000) RETURNING id")).scalars().all()
        session.execute(text('ANALYZE jobs'))
        session.commit()
        arguments = {'queued_age': 10, 'running_age': 60, 'limit': 1000, 'lost_age': 5,
                     'oldest': backlog[:10]}
        plan = session.execute(text('EXPLAIN (ANALYZE, FORMAT JSON) ' + STALE.text),
                               stale_parameters(**arguments)).scalar()[0]['Plan']
        session.rollback()
        assert _rows_read(plan) < 100
        assert ledger.take_stale(session, **arguments) == {'genre.create': lost}
