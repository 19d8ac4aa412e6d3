"""The web process as the Procfile runs it (one gunicorn gevent worker):
concurrent single-job POSTs share group commits, and a slow bcrypt hash of a
user.create does not stall the other requests of the process."""
import threading
import time

import requests

from tests.queued_messages import published_ids


def test_concurrent_posts_share_commits_and_messages(clean):
    svc = clean
    svc.stop('worker')  # the messages stay in the queue, to be counted
    import redis
    broker = redis.Redis.from_url(svc.env['CELERY_BROKER_URL'])
    try:
        broker.delete('jobs')
        responses = svc.post_many([('genre.create', {'name': f'g{i}', 'description': 'd'})
                                   for i in range(200)], threads=32)
        assert [r.status_code for r in responses] == [202] * 200
        ids = sorted(r.json()['id'] for r in responses)
        assert len(set(ids)) == 200
        assert published_ids(broker) == ids  # every job published, once
        messages = broker.llen('jobs')
        assert messages < 100, f'{messages} messages for 200 jobs: no group commit'
        # Each group is one transaction: fewer distinct xmins than jobs.
        transactions = svc.sql('SELECT count(DISTINCT xmin::text) FROM jobs WHERE id = ANY(:ids)',
                               ids=ids)[0][0]
        assert transactions < 100
    finally:
        svc.start('worker')
        svc.wait_worker()
    svc.wait_jobs(ids[-5:])


def test_a_password_hash_does_not_stall_the_other_requests(clean):
    svc = clean
    svc.stop('web')
    svc.start('web', WEB_CONCURRENCY='1')  # one process: the requests below share it
    svc.wait_web()
    try:
        _hash_while_asking(svc)
    finally:
        svc.stop('web')
        svc.start('web')
        svc.wait_web()


def _hash_while_asking(svc):
    users = [{'username': f'u{i}', 'email': f'u{i}@example.com', 'password': 'long enough'}
             for i in range(3)]
    started = threading.Event()
    hashing = {}

    def create_users():
        started.set()
        t = time.monotonic()
        hashing['status'] = requests.post(f'{svc.url}/jobs/user.create/batch', json=users,
                                          timeout=30).status_code
        hashing['seconds'] = time.monotonic() - t

    thread = threading.Thread(target=create_users)
    thread.start()
    started.wait()
    time.sleep(0.05)  # the batch is being hashed (three bcrypt hashes, about 0.2 s each)
    slowest = 0.0
    while thread.is_alive():
        t = time.monotonic()
        assert requests.get(f'{svc.url}/kinds', timeout=10).status_code == 200
        slowest = max(slowest, time.monotonic() - t)
    thread.join()
    assert hashing['status'] == 202
    assert hashing['seconds'] > 0.3  # the hashing took a while ...
    assert slowest < hashing['seconds'] / 2  # ... and the process answered meanwhile
