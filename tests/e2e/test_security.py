"""Security of the running service: a pickled message is refused by the
worker; in production mode the processes refuse unsafe settings, and no
secret reaches a log, whatever the requests.

The production-mode service uses a Redis database of its own
(TEST_SECURE_BROKER_URL, default: TEST_BROKER_URL's database + 1), so its
worker never shares a queue with the suite's `service`.
"""
import base64
import os
import pickle
import re
import secrets
import subprocess
import sys
import time
import uuid

import pytest
import redis
import requests
from kombu import Connection

from cli.processes import ROOT, Process
from tests.e2e.service import Service, free_port
from tests.settings import BROKER_URL, DATABASE2_URL


def _next_db(url):
    base, db = re.fullmatch(r'(.*/)(\d+)', url).groups()
    return f'{base}{(int(db) + 1) % 16}'


SECURE_BROKER_URL = os.environ.get('TEST_SECURE_BROKER_URL') or _next_db(BROKER_URL)


def wait_for(predicate, timeout=30, what='the condition'):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f'timed out waiting for {what}')


# --- a pickled message ---------------------------------------------------------

class CreatesAFile:
    """Unpickling this creates a file: the proof that a payload was unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def pickled_task_message(path):
    """A Celery protocol-2 message for genre.create whose body is a pickle."""
    task_id = str(uuid.uuid4())
    body = pickle.dumps(((CreatesAFile(path),), {},
                         {'callbacks': None, 'errbacks': None, 'chain': None, 'chord': None}))
    headers = {'lang': 'py', 'task': 'genre.create', 'id': task_id, 'root_id': task_id,
               'parent_id': None, 'group': None, 'retries': 0, 'eta': None, 'expires': None,
               'argsrepr': '(...)', 'kwargsrepr': '{}', 'origin': 'tests'}
    return body, headers


def test_a_pickled_message_is_refused_and_the_worker_goes_on(clean, tmp_path):
    svc = clean
    # The payload is live: unpickled here, it does create its file.
    control = tmp_path / 'control'
    pickle.loads(pickled_task_message(str(control))[0])
    assert control.exists()

    marker = tmp_path / 'unpickled-by-the-worker'
    body, headers = pickled_task_message(str(marker))
    worker = svc.processes['worker']
    log_before = len(worker.log())
    with Connection(BROKER_URL) as connection:
        connection.Producer().publish(
            body, exchange='', routing_key='jobs', serializer=None,
            content_type='application/x-python-serialize', content_encoding='binary',
            headers=headers, delivery_mode=2)

    wait_for(lambda: 'application/x-python-serialize' in worker.log()[log_before:],
             what='the worker to refuse the message')
    refusal = worker.log()[log_before:]
    assert re.search(r'[Rr]efusing to deserialize untrusted content of type pickle', refusal)
    # Refused, not requeued: the queue is empty and nothing was applied.
    assert redis.Redis.from_url(BROKER_URL).llen('jobs') == 0
    assert not marker.exists()
    assert svc.sql('SELECT count(*) FROM genre')[0][0] == 0

    assert worker.popen.poll() is None
    job = svc.run('genre.create', {'name': 'after', 'description': 'still working'})
    assert job['status'] == 'succeeded'
    assert svc.sql('SELECT name FROM genre') == [('after',)]
    assert not marker.exists()


# --- production mode, and secrets kept out of the logs -------------------------

def _secret(prefix):
    return f'{prefix}-{secrets.token_urlsafe(16)}'


@pytest.fixture(scope='module')
def secure(service_env, tmp_path_factory):
    """web, worker and flower in production mode with known secrets."""
    known = {
        'FLASK_SECRET_KEY': _secret('flask-key') + secrets.token_urlsafe(16),
        'FLASK_API_TOKENS': _secret('api-token'),
        'FLOWER_PASSWORD': _secret('flower-pw'),
    }
    env = {**service_env,
           'SERVICE_MODE': 'production',
           'FLASK_SECRET_KEY': known['FLASK_SECRET_KEY'],
           'FLASK_API_TOKENS': known['FLASK_API_TOKENS'],
           'FLOWER_BASIC_AUTH': f'ops:{known["FLOWER_PASSWORD"]}',
           'CELERY_BROKER_URL': SECURE_BROKER_URL,
           'PORT': str(free_port()), 'FLOWER_PORT': str(free_port())}
    redis.Redis.from_url(SECURE_BROKER_URL).flushdb()
    log_dir = str(tmp_path_factory.mktemp('secure-logs'))
    svc = Service(env, log_dir)
    svc.known = known
    svc.http.headers['Authorization'] = f'Bearer {known["FLASK_API_TOKENS"]}'
    with svc.app.app_context():
        svc.db.syncdb()
    try:
        with svc.running('web', 'worker', 'flower'):
            yield svc
    finally:
        redis.Redis.from_url(SECURE_BROKER_URL).flushdb()


def start_alone(name, env, log_dir):
    """One Procfile process that is expected to stop by itself; return its log."""
    process = Process(name, env, log_dir)
    try:
        process.popen.wait(90)
    finally:
        process.stop()
    return process.popen.returncode, process.log()


def test_production_processes_refuse_unsafe_settings(secure, tmp_path):
    short_key = _secret('short')[:20]
    env = {**secure.env, 'FLASK_API_TOKENS': '', 'FLASK_SECRET_KEY': short_key,
           'PORT': str(free_port())}
    for name in ('web', 'worker'):
        code, log = start_alone(name, env, str(tmp_path))
        assert code != 0, log
        assert 'refusing to start in production mode' in log
        assert 'FLASK_API_TOKENS is empty' in log and 'FLASK_SECRET_KEY is shorter' in log
        for value in (short_key, *secure.known.values()):
            assert value not in log


def test_the_cli_sends_the_token(secure, tmp_path):
    svc = secure
    manage = [sys.executable, os.path.join(ROOT, 'manage.py')]
    env = {**os.environ, 'FLASK_API_TOKENS': svc.known['FLASK_API_TOKENS']}
    listed = subprocess.run([*manage, 'jobs', 'list', '--limit', '1', '--url', svc.url],
                            env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    refused = subprocess.run([*manage, 'jobs', 'list', '--url', svc.url, '--token', 'not-it'],
                             env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and '"code": 401' in refused.stderr
    jobs = tmp_path / 'jobs.jsonl'
    jobs.write_text('{"kind": "genre.create", "payload": {"name": "a", "description": "b"}}\n' * 3)
    stopped = subprocess.run([*manage, 'enqueue', str(jobs), '--url', svc.url, '--token', 'no'],
                             env=env, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 2
    assert 'accepted 0, refused 0, not sent 3' in stopped.stdout
    assert 'stopped at line 1: a valid bearer token is required' in stopped.stdout


# Last of the module: it stops the service to read its complete logs.
def test_no_secret_reaches_a_log(secure, tmp_path):
    svc = secure
    user_password = _secret('user-pw')
    short_password = 'Sh0rt!' + secrets.token_hex(1)[:1]     # 7 characters: refused
    wrong_token = _secret('wrong-token')
    wrong_db_password = _secret('db-pw')
    known = {**svc.known, 'user password': user_password, 'short password': short_password,
             'wrong token': wrong_token, 'wrong DB password': wrong_db_password,
             'DB password': re.search(r'//[^:/]+:([^@]+)@', svc.env['SQLALCHEMY_DEFAULT']).group(1)}

    # Authentication failures.
    assert requests.get(f'{svc.url}/jobs', timeout=10).status_code == 401
    assert requests.get(f'{svc.url}/jobs', headers={'Authorization': f'Bearer {wrong_token}'},
                        timeout=10).status_code == 401
    basic = base64.b64encode(f'ops:{svc.known["FLOWER_PASSWORD"]}'.encode()).decode()
    assert requests.post(f'{svc.url}/jobs/genre.create', json={'name': 'x', 'description': 'y'},
                         headers={'Authorization': f'Basic {basic}'}, timeout=10).status_code == 401
    # Jobs, good and bad, a user's password among them.
    user = svc.run('user.create', {'username': 'alice', 'email': 'alice@example.com',
                                   'password': user_password})
    assert user['status'] == 'succeeded'
    response = svc.post('user.create', {'username': 'bob', 'email': 'bob@example.com',
                                        'password': user_password},
                        headers={'Idempotency-Key': 'bob-1'})
    assert response.status_code == 202
    svc.wait_jobs([response.json()['id']])
    assert svc.post('user.create', {'username': 'eve', 'email': 'eve@example.com',
                                    'password': short_password}).status_code == 400
    batch = svc.http.post(f'{svc.url}/jobs/user.create/batch', timeout=30, json=[
        {'username': 'c', 'email': 'c@example.com', 'password': user_password},
        {'username': 'd', 'email': 'not an email', 'password': user_password}])
    assert batch.status_code == 400
    failed = svc.run('artist.create', {'name': 'n', 'description': 'd', 'genre_id': 2**31 - 1})
    assert failed['status'] == 'failed'
    assert svc.http.get(f'{svc.url}/jobs?limit=5', timeout=10).status_code == 200
    # Flower: a wrong login, then the right one.
    flower = f'http://127.0.0.1:{svc.env["FLOWER_PORT"]}/'
    wait_for(lambda: _answers(flower), timeout=60, what='Flower')
    assert requests.get(flower, auth=('ops', wrong_token), timeout=10).status_code == 401
    assert requests.get(flower, auth=('ops', svc.known['FLOWER_PASSWORD']),
                        timeout=10).status_code == 200
    # A database URL with a password where nothing listens, and a URL that
    # does not parse: errors that could carry a URL.
    bad_db = re.sub(r'//([^:/]+):[^@]+@([^:/]+)(:\d+)?/', rf'//\1:{wrong_db_password}@\2:{free_port()}/',
                    svc.env['SQLALCHEMY_DEFAULT'])
    assert wrong_db_password in bad_db
    bad_port = free_port()
    bad_web = Process('web', {**svc.env, 'SQLALCHEMY_DEFAULT': bad_db, 'PORT': str(bad_port)},
                      str(tmp_path))
    try:
        bad_url = f'http://127.0.0.1:{bad_port}'
        wait_for(lambda: _answers(bad_url + '/health'), timeout=60, what='the second web')
        assert requests.get(bad_url + '/health', timeout=30).status_code == 503
        assert requests.get(bad_url + '/jobs/1', headers=svc.http.headers,
                            timeout=30).status_code == 503
    finally:
        bad_web.stop()
    malformed = DATABASE2_URL.replace('@', f'{wrong_db_password}@').replace(':5432', ':port')
    code, _ = start_alone('worker', {**svc.env, 'SQLALCHEMY_DB2': malformed}, str(tmp_path))
    assert code != 0

    svc.stop_all()  # the logs complete
    logs = {}
    for directory in (svc.log_dir, str(tmp_path)):
        for name in os.listdir(directory):
            with open(os.path.join(directory, name), errors='replace') as f:
                logs[os.path.join(os.path.basename(directory), name)] = f.read()
    assert {'web.log', 'worker.log', 'flower.log'} <= {os.path.basename(n) for n in logs}
    assert 'not a valid database URL' in ''.join(logs.values())
    leaks = [(what, name) for what, value in known.items() for name, text in logs.items()
             if value in text]
    assert not leaks, f'secrets in the logs: {leaks}'


def _answers(url):
    try:
        requests.get(url, timeout=5)
        return True
    except requests.RequestException:
        return False
