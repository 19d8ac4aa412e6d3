"""Flower, started as the Procfile starts it, sees the worker and its tasks."""
import time

import requests

from tests.e2e.conftest import FLOWER_AUTH


def _get(url, auth=None):
    return requests.get(url, auth=auth, timeout=10)


def test_flower_shows_the_worker_and_a_finished_task(clean):
    svc = clean
    flower = svc.start('flower')
    base = f'http://127.0.0.1:{svc.env["FLOWER_PORT"]}'
    auth = tuple(FLOWER_AUTH.split(':', 1))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _get(base + '/api/workers', auth).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, flower.log()
            time.sleep(0.3)

        assert _get(base + '/api/workers').status_code == 401
        assert _get(base + '/api/workers', ('flower', 'wrong')).status_code == 401

        workers = _get(base + '/api/workers?refresh=1', auth).json()
        assert workers and any('jobs' in str(w.get('active_queues')) for w in workers.values())

        # The worker sends task events once Flower has turned them on (its
        # enable_events, every 5 s): jobs applied before that are not seen.
        deadline = time.monotonic() + 30
        seen = []
        while not seen:
            assert time.monotonic() < deadline, 'Flower never saw a task'
            job = svc.run('genre.create', {'name': 'watched', 'description': 'd'})
            for _ in range(10):
                tasks = _get(base + '/api/tasks', auth).json()
                seen = [t for t in tasks.values()
                        if t.get('name') == 'genre.create' and t.get('state') == 'SUCCESS'
                        and t.get('args') and str(job['id']) in t['args']]
                if seen:
                    break
                time.sleep(0.3)
    finally:
        svc.stop('flower')
