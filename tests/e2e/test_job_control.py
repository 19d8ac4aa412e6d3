"""Job control over the real processes (web, worker, beat from the
Procfile): scheduled jobs run on time and once, even when due while
everything was stopped; a cancelled job's late message applies nothing;
two beats enqueue each periodic slot once; a timed-out handler releases its
row locks; a queue-routed kind is served only by its worker; enqueue in the
caller's transaction (commit, rollback, crash before the publish).

The kinds with a policy are tests/control_kinds.py (WORKER_KIND_MODULES of
the processes only: this process keeps the service's own kinds)."""
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta

import pytest
import redis

from cli.processes import ROOT, Process, children
from tests.e2e.service import Service

BROKER_URL = os.environ.get('TEST_CONTROL_BROKER_URL', 'redis://127.0.0.1:6379/7')
GENRE = {'description': 'scheduled'}
PERIODIC = {'every-second': {'kind': 'genre.create', 'cron': '* * * * * *',
                             'payload': {'name': 'tick', 'description': 'periodic'}}}


@pytest.fixture(scope='module')
def svc(service_env, tmp_path_factory):
    """web, worker and beat on a broker database of this module, beat's due
    pass every 0.2 s, a sweep every second."""
    env = {**service_env, 'CELERY_BROKER_URL': BROKER_URL,
           'WORKER_DUE_EVERY_SECONDS': '0.2', 'WORKER_SWEEP_EVERY_SECONDS': '1',
           'WORKER_SWEEP_AGE_SECONDS': '1',
           'BEAT_SCHEDULE_FILE': str(tmp_path_factory.mktemp('beat') / 'schedule')}
    redis.Redis.from_url(BROKER_URL).flushdb()
    service = Service(env, str(tmp_path_factory.mktemp('logs')))
    # The processes load the test kinds; this process does not (its registry stays the service's).
    service.env['WORKER_KIND_MODULES'] = 'tests.control_kinds'
    with service.app.app_context():
        service.db.syncdb()
        service.db.cleandb()
    with service.running('web', 'worker', 'beat'):
        yield service


@pytest.fixture
def clean(svc):
    with svc.app.app_context():
        svc.db.cleandb()
    return svc


def post(svc, kind, payload, **params):
    response = svc.http.post(f'{svc.url}/jobs/{kind}', json=payload, params=params, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


def parse(instant):
    return datetime.fromisoformat(instant)


def db_now(svc):
    return svc.sql('SELECT clock_timestamp()')[0][0]


def wait_status(svc, job_id, statuses, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = svc.job(job_id)
        if job['status'] in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f'job {job_id} is {svc.job(job_id)}')


def genres(svc, name):
    return svc.sql('SELECT count(*) FROM genre WHERE name = :n', n=name)[0][0]


def test_a_scheduled_job_runs_within_a_second_of_its_time_and_not_before(clean):
    run_at = db_now(clean) + timedelta(seconds=2)
    accepted = post(clean, 'genre.create', {'name': 'at', **GENRE},
                    run_at=run_at.isoformat().replace('+00:00', 'Z'))
    delayed = post(clean, 'genre.create', {'name': 'delayed', **GENRE}, delay='1.5')
    assert accepted['status'] == delayed['status'] == 'scheduled'
    batch = clean.http.post(f'{clean.url}/jobs/genre.create/batch', params={'delay': 1},
                            json=[{'name': 'b', **GENRE}] * 3, timeout=30).json()
    jobs = [accepted['id'], delayed['id'], *batch['ids']]
    time.sleep(0.5)
    assert {clean.job(j)['status'] for j in jobs} == {'scheduled'}
    finished = clean.wait_jobs(jobs, timeout=20)
    for job_id, job in finished.items():
        assert job['status'] == 'succeeded', job
        late = parse(job['updated_at']) - parse(job['run_at'])
        assert timedelta(0) <= late <= timedelta(seconds=1), (job_id, late)
    assert (genres(clean, 'at'), genres(clean, 'delayed'), genres(clean, 'b')) == (1, 1, 3)


def test_a_job_due_while_all_was_stopped_runs_once_and_a_cancelled_ones_late_message_nothing(
        clean):
    clean.stop('worker')
    queued = post(clean, 'genre.create', {'name': 'cancelled', **GENRE})
    scheduled = post(clean, 'genre.create', {'name': 'never', **GENRE}, delay='1')
    for job in (queued, scheduled):
        answer = clean.http.post(f'{clean.url}/jobs/{job["id"]}/cancel', timeout=10)
        assert answer.status_code == 200 and answer.json()['status'] == 'cancelled'
    assert redis.Redis.from_url(BROKER_URL).llen('jobs') >= 1  # the cancelled job's message
    overdue = post(clean, 'genre.create', {'name': 'overdue', **GENRE}, delay='0.5')
    clean.stop('beat')
    clean.stop('web')
    time.sleep(1.5)  # due, with nothing running
    assert clean.sql('SELECT status FROM jobs WHERE id = :i', i=overdue['id'])[0][0] == 'scheduled'
    for name in ('web', 'worker', 'beat'):
        clean.start(name)
    clean.wait_web()
    clean.wait_worker()
    done = clean.wait_jobs([overdue['id']], timeout=30)[overdue['id']]
    assert (done['status'], done['attempts']) == ('succeeded', 1)
    time.sleep(1)  # a second publish would have applied it again by now
    assert genres(clean, 'overdue') == 1
    assert genres(clean, 'cancelled') == genres(clean, 'never') == 0
    for job in (queued, scheduled):
        assert clean.job(job['id'])['status'] == 'cancelled'
    again = clean.http.post(f'{clean.url}/jobs/{overdue["id"]}/cancel', timeout=10)
    assert again.status_code == 409 and 'succeeded' in again.json()['message']


def manage(svc, *args, stdin=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, 'manage.py'), *args, '--url',
                           svc.url], input=stdin, env={**os.environ, 'FLASK_API_TOKENS': ''},
                          capture_output=True, text=True, timeout=120)


def test_the_cli_schedules_cancels_and_retries_in_bulk_answering_the_count(clean):
    failed = [clean.run('user.credit', {'user_id': 999, 'amount': 1})['id'] for _ in range(2)]
    lines = ''.join(json.dumps({'kind': 'genre.create', 'payload': {'name': 'w', **GENRE},
                                'delay': 60}) + '\n' for _ in range(3))
    sent = manage(clean, 'enqueue', '-', '--no-progress', stdin=lines)
    assert sent.returncode == 0 and 'accepted 3' in sent.stdout, sent.stdout + sent.stderr
    waiting = [job['id'] for job in json.loads(manage(
        clean, 'jobs', 'list', '--status', 'scheduled').stdout)['jobs']]
    assert len(waiting) == 3
    one = manage(clean, 'jobs', 'cancel', str(waiting[0]))
    assert one.returncode == 0 and json.loads(one.stdout)['status'] == 'cancelled', one.stderr
    cancel = manage(clean, 'jobs', 'cancel', '--status', 'scheduled', '--kind', 'genre.create')
    assert json.loads(cancel.stdout) == {'count': 2}, cancel.stderr
    retry = manage(clean, 'jobs', 'retry', '--status', 'failed', '--kind', 'user.credit')
    assert json.loads(retry.stdout) == {'count': 2, 'refused': 0}, retry.stderr
    for job in clean.wait_jobs(failed).values():  # run again: the user is still missing
        assert (job['status'], job['attempts']) == ('failed', 1)
    assert {clean.job(j)['status'] for j in waiting} == {'cancelled'}
    bare = manage(clean, 'jobs', 'cancel')
    assert bare.returncode == 2 and 'filters' in bare.stderr


def test_a_running_job_is_not_cancelled_and_a_timed_out_one_releases_its_locks(clean):
    user_id = clean.run('user.create', {'username': 'held', 'email': 'h@example.com',
                                        'password': 'long enough'})['result']['id']
    job = post(clean, 'control.hold', {'user_id': user_id, 'seconds': 30})
    wait_status(clean, job['id'], ('running',))
    refused = clean.http.post(f'{clean.url}/jobs/{job["id"]}/cancel', timeout=10)
    assert refused.status_code == 409 and 'running' in refused.json()['message']
    started = time.monotonic()
    # Two attempts of 1 s each (max_attempts=2), each stopped and rolled back.
    done = clean.wait_jobs([job['id']], timeout=20)[job['id']]
    assert (done['status'], done['attempts']) == ('failed', 2), done
    assert done['error'] == 'gave up after 2 attempts: timed out after 1 s'
    assert time.monotonic() - started < 10
    credit = clean.run('user.credit', {'user_id': user_id, 'amount': 5})  # the row is free
    assert credit['status'] == 'succeeded', credit
    stuck = clean.run('control.sql_sleep', {'user_id': user_id, 'seconds': 30})
    assert stuck['error'] == 'gave up after 1 attempts: timed out after 1 s'
    assert clean.run('user.credit', {'user_id': user_id, 'amount': 5})['status'] == 'succeeded'


def test_a_queue_routed_kind_is_served_only_by_its_worker(clean):
    job = post(clean, 'control.routed', {'n': 1})
    time.sleep(1.5)
    assert clean.job(job['id'])['status'] == 'queued'  # the jobs worker leaves it alone
    log_dir = os.path.join(clean.log_dir, 'special')
    os.makedirs(log_dir, exist_ok=True)
    special = Process('worker', {**clean.env, 'WORKER_QUEUES': 'control-special',
                                 'WORKER_CONCURRENCY': '1'}, log_dir)
    try:
        done = clean.wait_jobs([job['id']], timeout=30)[job['id']]
        assert done['status'] == 'succeeded'
        assert done['result']['pid'] in children(special.pid)
        ordinary = clean.run('genre.create', {'name': 'ordinary', **GENRE})
        assert ordinary['status'] == 'succeeded'  # the jobs worker still serves jobs
    finally:
        special.stop()


def test_two_beats_enqueue_each_periodic_slot_once(clean, tmp_path):
    env = {**clean.env, 'WORKER_PERIODIC_JOBS': json.dumps(PERIODIC)}
    clean.stop('beat')
    for i in (1, 2):
        (tmp_path / f'beat{i}').mkdir()
    beats = [Process('beat', {**env, 'BEAT_SCHEDULE_FILE': str(tmp_path / f'schedule{i}')},
                     str(tmp_path / f'beat{i}')) for i in (1, 2)]
    query = ("SELECT idempotency_key, count(*) FROM jobs WHERE idempotency_scope = 'periodic' "
             'GROUP BY idempotency_key')
    try:
        deadline = time.monotonic() + 30
        while len(clean.sql(query)) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        rows = clean.sql(query)
        assert len(rows) >= 4, (rows, beats[0].log()[-3000:])
    finally:
        for beat in beats:
            beat.stop()
        clean.start('beat')
    rows = clean.sql(query)
    assert all(count == 1 for _, count in rows), rows
    assert all(key.startswith('every-second@') for key, _ in rows)
    keys = sorted(key for key, _ in rows)
    ids = [r[0] for r in clean.sql("SELECT id FROM jobs WHERE idempotency_scope = 'periodic'")]
    clean.wait_jobs(ids)
    assert genres(clean, 'tick') == len(keys)


ENQUEUE_SCRIPT = '''
import os, sys
from sqlalchemy import event
from service import create_app
from service.enqueue import enqueue
from tasks.music import Genre
app = create_app()
with app.app_context():
    session = app.extensions['pg'].pool.connection().session
    if sys.argv[1] == 'crash':
        # Registered first, so it runs before the publish: the process dies in between.
        event.listen(session, 'after_commit', lambda s: os._exit(3))
    Genre(name=sys.argv[2], description='own row').add()
    print(enqueue('genre.create', {'name': sys.argv[2], 'description': 'job'}), flush=True)
    if sys.argv[1] == 'rollback':
        session.rollback()
    else:
        session.commit()
'''


def enqueue_in_a_process(svc, mode, name):
    env = {**svc.env}
    env.pop('WORKER_KIND_MODULES', None)
    result = subprocess.run([sys.executable, '-c', ENQUEUE_SCRIPT, mode, name], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    return result.returncode, int(result.stdout.split()[-1])


def test_enqueue_in_the_callers_transaction_commit_rollback_and_crash(clean):
    code, committed = enqueue_in_a_process(clean, 'commit', 'committed')
    assert code == 0
    assert clean.wait_jobs([committed])[committed]['status'] == 'succeeded'
    code, rolled_back = enqueue_in_a_process(clean, 'rollback', 'rolled back')
    assert code == 0
    assert clean.sql('SELECT count(*) FROM jobs WHERE id = :i', i=rolled_back)[0][0] == 0
    code, crashed = enqueue_in_a_process(clean, 'crash', 'crashed')
    assert code == 3  # died after the commit, before its message was sent
    assert clean.job(crashed)['status'] == 'queued'
    # The sweep (every second here, for jobs queued over a second) sends it.
    assert clean.wait_jobs([crashed], timeout=30)[crashed]['status'] == 'succeeded'
    # the view's own rows: committed with their job, or not at all
    assert (genres(clean, 'committed'), genres(clean, 'rolled back'), genres(clean, 'crashed')) \
        == (2, 0, 2)
