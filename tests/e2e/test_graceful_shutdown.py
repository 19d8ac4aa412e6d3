"""SIGTERM, as docker sends it to a container's process at a deploy:
the worker finishes the group of jobs it holds, hands back the messages it
had prefetched, and exits within its grace period; the web answers every
request in flight before it exits. Nothing lost, nothing applied twice.

A row lock (or table lock) held by the test keeps the jobs (or requests) in
flight while the signal arrives."""
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import redis
import requests

from tests.e2e.service import Service, free_port
from tests.settings import DATABASE_URL, redis_url

# A Redis database of the module's own: the session's worker consumes the e2e one.
BROKER_URL = redis_url(2)
WORKER_GRACE_SECONDS = 60   # compose's stop_grace_period of the worker
WEB_GRACE_SECONDS = 30      # gunicorn's graceful_timeout (gunicorn.conf.py)


@pytest.fixture
def svc(service_env, tmp_path):
    env = dict(service_env, PORT=str(free_port()), WEB_CONCURRENCY='1',
               CELERY_BROKER_URL=BROKER_URL,
               # Lock waits outlast the test's lock, so jobs and requests wait rather than fail.
               SQLALCHEMY_LOCK_TIMEOUT_MS='30000')
    redis.Redis.from_url(BROKER_URL).flushdb()
    service = Service(env, str(tmp_path))
    with service.app.app_context():
        service.db.syncdb()
        service.db.cleandb()
    yield service
    service.stop_all()


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f'timed out waiting for {what}')


def sigterm_and_wait(process, timeout):
    """SIGTERM to the process itself (not its group: docker signals PID 1),
    then the seconds it took to exit and its exit code."""
    started = time.monotonic()
    os.kill(process.pid, signal.SIGTERM)
    return started, lambda: process.popen.wait(timeout)


def test_sigterm_to_the_worker_finishes_or_hands_back_its_jobs(svc):
    svc.start('web')
    worker = svc.start('worker')
    svc.wait_web()
    svc.wait_worker()
    user = svc.run('user.create', {'username': 'grace', 'email': 'grace@example.com',
                                   'password': 'long enough'})['result']['id']
    broker = redis.Redis.from_url(BROKER_URL)
    with psycopg.connect(DATABASE_URL) as lock:
        lock.execute('SELECT 1 FROM users WHERE id = %s FOR UPDATE', (user,))
        # One group of 50 credits (one message), then single credits (a message each).
        group = svc.http.post(f'{svc.url}/jobs/user.credit/batch', timeout=30,
                              json=[{'user_id': user, 'amount': 1}] * 50)
        assert group.status_code == 202, group.text
        singles = [svc.post('user.credit', {'user_id': user, 'amount': 100}) for _ in range(6)]
        assert all(r.status_code == 202 for r in singles)
        ids = group.json()['ids'] + [r.json()['id'] for r in singles]
        # The worker holds the group (claimed: running) and has the rest prefetched.
        wait_until(lambda: svc.sql("SELECT count(*) FROM jobs WHERE status = 'running' "
                                   "AND id = ANY(:ids)", ids=ids)[0][0] >= 50
                   and broker.llen('jobs') == 0, 20, 'the worker to hold the jobs')
        started, wait = sigterm_and_wait(worker, WORKER_GRACE_SECONDS)
        time.sleep(1.5)
        assert worker.popen.poll() is None, 'the worker left before its jobs were done'
        lock.rollback()  # the jobs in hand can go on now
        code = wait()
    took = time.monotonic() - started
    assert code == 0, worker.log()[-3000:]
    assert took < WORKER_GRACE_SECONDS

    statuses = dict(svc.sql('SELECT status, count(*) FROM jobs WHERE id = ANY(:ids) GROUP BY status',
                            ids=ids))
    # The group was finished; what was not started was handed back to Redis, none left unacked.
    assert statuses.get('succeeded', 0) >= 50 and 'running' not in statuses, statuses
    handed_back = statuses.get('queued', 0)
    assert broker.llen('jobs') == handed_back and not broker.hlen('unacked')

    svc.processes.pop('worker')
    svc.start('worker')  # a new worker takes what was handed back
    wait_until(lambda: svc.sql("SELECT count(*) FROM jobs WHERE status <> 'succeeded' "
                               "AND id = ANY(:ids)", ids=ids)[0][0] == 0, 60, 'every job to finish')
    credit = svc.sql('SELECT credit_score FROM users WHERE id = :id', id=user)[0][0]
    attempts = svc.sql('SELECT max(attempts) FROM jobs WHERE id = ANY(:ids)', ids=ids)[0][0]
    print(f'\nworker SIGTERM: exited in {took:.1f} s, group finished, handed back {handed_back} '
          f'messages, credit {credit} of {50 + 600}, most attempts of a job {attempts}')
    assert credit == 50 + 6 * 100  # every credit applied once
    assert attempts == 1, svc.sql("SELECT id, attempts, status FROM jobs WHERE attempts > 1 AND id = ANY(:ids)", ids=ids)


def test_sigterm_to_the_web_answers_every_request_in_flight(svc):
    web = svc.start('web')
    svc.wait_web()
    count = 12
    with psycopg.connect(DATABASE_URL) as lock, ThreadPoolExecutor(count) as pool:
        lock.execute('LOCK TABLE jobs IN SHARE MODE')  # INSERTs wait
        answers = [pool.submit(svc.post, 'genre.create', {'name': f'g{i}', 'description': 'd'})
                   for i in range(count)]
        wait_until(lambda: svc.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                                   "'Lock' AND query LIKE '%INSERT%jobs%'")[0][0] >= 1, 20,
                   'the requests to wait on the lock')
        started, wait = sigterm_and_wait(web, WEB_GRACE_SECONDS + 5)
        time.sleep(1.5)
        assert web.popen.poll() is None, 'the web left before answering'
        lock.rollback()
        responses = [a.result() for a in answers]
        code = wait()
    took = time.monotonic() - started
    assert [r.status_code for r in responses] == [202] * count, [r.text for r in responses]
    ids = [r.json()['id'] for r in responses]
    assert len(set(ids)) == count
    assert svc.sql('SELECT count(*) FROM jobs WHERE id = ANY(:ids)', ids=ids)[0][0] == count
    assert code == 0 and took < WEB_GRACE_SECONDS, web.log()[-3000:]
    print(f'\nweb SIGTERM: {count} requests in flight answered 202, exited in {took:.1f} s')
    with pytest.raises(requests.ConnectionError):  # and it is gone
        svc.http.get(svc.url + '/health', timeout=2)
