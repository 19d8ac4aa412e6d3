"""manage.py enqueue and jobs against the running service (open API: the
suite's development mode; tests/e2e/test_security.py runs them with a token)."""
import json
import os
import subprocess
import sys

from cli.processes import ROOT

MANAGE = [sys.executable, os.path.join(ROOT, 'manage.py')]


def manage(svc, *args, stdin=None):
    env = {**os.environ, 'FLASK_API_TOKENS': ''}
    return subprocess.run([*MANAGE, *args, '--url', svc.url], input=stdin, env=env,
                          capture_output=True, text=True, timeout=120)


def genre(name):
    return json.dumps({'kind': 'genre.create', 'payload': {'name': name, 'description': 'd'}})


def test_enqueue_accepts_the_good_lines_and_refuses_the_bad(clean, tmp_path):
    svc = clean
    lines = [genre(f'g{i}') for i in range(5)]                                  # lines 1-5
    lines.append(json.dumps({'kind': 'genre.create', 'payload': {'name': 'no description'}}))  # 6
    lines += [genre(f'g{i}') for i in range(5, 9)]                              # lines 7-10
    lines.append('{"kind": "genre.create", "payload": ')                       # 11: not JSON
    lines.append('')                                                           # 12: blank
    lines.append(json.dumps({'kind': 'no.such', 'payload': {}}))               # 13
    lines.append(json.dumps({'kind': 'user.create', 'payload': {
        'username': 'u', 'email': 'u@example.com', 'password': 'Tiny-pw'}}))   # 14: too short
    lines.append(json.dumps({'kind': 'genre.create', 'payload': {'name': 'keyed', 'description': 'k'},
                             'idempotency_key': 'cli-test-1'}))                # 15
    path = tmp_path / 'jobs.jsonl'
    path.write_text('\n'.join(lines) + '\n')

    result = manage(svc, 'enqueue', str(path), '--batch', '4')
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith('accepted 10, refused 4\n'), out
    assert 'line 6: invalid genre.create payload: /description is required' in out
    assert 'line 11: not valid JSON' in out and "line 13: unknown job kind 'no.such'" in out
    assert 'line 14: ' in out and 'Tiny-pw' not in out

    ids = [job['id'] for job in svc.http.get(f'{svc.url}/jobs?limit=100').json()['jobs']]
    assert len(ids) == 10
    assert all(job['status'] == 'succeeded' for job in svc.wait_jobs(ids).values())
    names = sorted(row[0] for row in svc.sql('SELECT name FROM genre'))
    assert names == sorted([f'g{i}' for i in range(9)] + ['keyed'])

    # The same file again from stdin: the keyed line returns its job, the others are new.
    again = manage(svc, 'enqueue', '-', '--batch', '100', stdin=path.read_text())
    assert again.returncode == 1 and again.stdout.startswith('accepted 10, refused 4\n')
    assert len(svc.http.get(f'{svc.url}/jobs?limit=100').json()['jobs']) == 19


def test_enqueue_all_good_exits_zero(clean, tmp_path):
    svc = clean
    result = manage(svc, 'enqueue', '-', stdin='\n'.join(genre(f'x{i}') for i in range(250)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == 'accepted 250, refused 0'
    ids = [job['id'] for job in svc.http.get(f'{svc.url}/jobs?limit=1000').json()['jobs']]
    svc.wait_jobs(ids)
    assert svc.sql('SELECT count(*) FROM genre')[0][0] == 250


def test_jobs_list_show_and_retry(clean):
    svc = clean
    failed = svc.run('artist.create', {'name': 'a', 'description': 'd', 'genre_id': 2**31 - 1})
    done = svc.run('genre.create', {'name': 'g', 'description': 'd'})
    assert failed['status'] == 'failed' and done['status'] == 'succeeded'

    listed = manage(svc, 'jobs', 'list', '--status', 'failed', '--kind', 'artist.create',
                    '--limit', '5')
    assert listed.returncode == 0, listed.stderr
    assert [job['id'] for job in json.loads(listed.stdout)['jobs']] == [failed['id']]
    every = json.loads(manage(svc, 'jobs', 'list').stdout)['jobs']
    assert [job['id'] for job in every] == [done['id'], failed['id']]

    shown = manage(svc, 'jobs', 'show', str(failed['id']))
    assert shown.returncode == 0
    job = json.loads(shown.stdout)
    assert job['id'] == failed['id'] and job['status'] == 'failed' and job['error']

    retried = manage(svc, 'jobs', 'retry', str(failed['id']))
    assert retried.returncode == 0, retried.stderr
    answer = json.loads(retried.stdout)
    assert answer['id'] == failed['id'] and answer['status'] == 'queued'
    assert svc.wait_jobs([failed['id']])[failed['id']]['status'] == 'failed'

    not_failed = manage(svc, 'jobs', 'retry', str(done['id']))
    assert not_failed.returncode == 1 and json.loads(not_failed.stderr)['code'] == 409
    missing = manage(svc, 'jobs', 'show', '999999999')
    assert missing.returncode == 1 and json.loads(missing.stderr)['code'] == 404
    unreachable = subprocess.run([*MANAGE, 'jobs', 'list', '--url', 'http://127.0.0.1:9',
                                  '--retries', '1'],
                                 capture_output=True, text=True, timeout=120)
    assert unreachable.returncode == 2 and 'did not answer' in unreachable.stderr
