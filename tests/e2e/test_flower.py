"""Flower, started as the Procfile starts it, sees the worker and its tasks,
and tells what the ledger tells."""
import ast
import re
import time

import redis
import requests

from tests.e2e.service import FLOWER_AUTH


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


def _start_flower(svc):
    """Flower started as the Procfile starts it; returns its base URL and login
    once it answers and has seen a task (task events are on)."""
    flower = svc.start('flower')
    base = f'http://127.0.0.1:{svc.env["FLOWER_PORT"]}'
    auth = tuple(FLOWER_AUTH.split(':', 1))
    deadline = time.monotonic() + 40
    while True:
        try:
            seen = [t for t in _get(base + '/api/tasks', auth).json().values()
                    if t.get('state') == 'SUCCESS']
            if seen:
                return flower, base, auth
        except (requests.ConnectionError, ValueError):
            pass
        assert time.monotonic() < deadline, flower.log()
        svc.run('genre.create', {'name': 'warm-up', 'description': 'd'})
        time.sleep(0.5)


def _job_ids(task):
    return [int(n) for n in re.findall(r'\d+', task.get('args') or '')]


def test_flower_says_what_the_ledger_says(clean):
    """A run with failures: each task Flower shows is FAILURE exactly when all
    of its message's jobs failed in the ledger (with the reason), and its
    result counts its jobs per outcome as the ledger does; no message is
    delivered again (each job tried once, nothing left in Redis)."""
    svc = clean
    flower, base, auth = _start_flower(svc)
    try:
        assert FLOWER_AUTH.split(':', 1)[1] not in open(f'/proc/{flower.pid}/cmdline').read()
        genre = svc.run('genre.create', {'name': 'g', 'description': 'd'})['result']['id']
        ids = [svc.post('user.credit', {'user_id': 2**31 - 1, 'amount': 1}).json()['id'],
               svc.post('genre.update', {'id': genre, 'name': 'renamed'}).json()['id']]
        mixed = svc.http.post(f'{svc.url}/jobs/genre.update/batch', timeout=30, json=[
            {'id': genre, 'description': 'new'}, {'id': 2**31 - 1, 'name': 'nothing'},
            {'id': genre, 'name': 'again'}])
        assert mixed.status_code == 202, mixed.text
        ids += mixed.json()['ids']
        ledger = svc.wait_jobs(ids)
        assert [ledger[i]['status'] for i in ids] == [
            'failed', 'succeeded', 'succeeded', 'failed', 'succeeded']

        deadline = time.monotonic() + 20
        while True:
            tasks = [t for t in _get(base + '/api/tasks', auth).json().values()
                     if set(_job_ids(t)) & set(ids)]
            if (sorted(i for t in tasks for i in _job_ids(t)) == sorted(ids)
                    and all(t['state'] in ('SUCCESS', 'FAILURE') for t in tasks)):
                break
            assert time.monotonic() < deadline, tasks
            time.sleep(0.3)

        for task in tasks:
            jobs = [ledger[i] for i in _job_ids(task)]
            counts = {}
            for job in jobs:
                counts[job['status']] = counts.get(job['status'], 0) + 1
            if set(counts) == {'failed'}:
                assert task['state'] == 'FAILURE', task
                assert 'JobsFailed' in task['exception']
                for job in jobs:
                    assert job['error'] in task['exception'], (job, task)
            else:
                assert task['state'] == 'SUCCESS', task
                assert ast.literal_eval(task['result']) == counts
        assert {t['state'] for t in tasks} == {'SUCCESS', 'FAILURE'}
        assert any(ast.literal_eval(t['result'] or '{}') == {'succeeded': 2, 'failed': 1}
                   for t in tasks if t['state'] == 'SUCCESS')

        # Acked, failures included: nothing waits or is held for redelivery.
        broker = redis.Redis.from_url(svc.env['CELERY_BROKER_URL'])
        assert broker.llen('jobs') == 0 and broker.hlen('unacked') == 0
        assert {ledger[i]['attempts'] for i in ids} == {1}
        time.sleep(1)
        assert {svc.job(i)['attempts'] for i in ids} == {1}
    finally:
        svc.stop('flower')
