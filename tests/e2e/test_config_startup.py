"""Settings as an operator gives them, read back from running processes: a
Celery setting given by environment reaches the worker (`celery inspect
conf`); an unsafe override and an unknown prefixed name stop the start,
naming the variable."""
import json
import os
import socket
import subprocess
import sys

import pytest
import redis

from tests.e2e.service import Service
from tests.settings import BROKER_URL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRODUCTION = {'SERVICE_MODE': 'production', 'FLASK_SECRET_KEY': 'k' * 40,
              'FLASK_API_TOKENS': 't' * 24, 'FLOWER_BASIC_AUTH': 'admin:' + 'p' * 20}


def test_a_celery_setting_from_the_environment_reaches_the_worker(service_env, tmp_path):
    redis.Redis.from_url(BROKER_URL).flushdb()
    # A name of its own (WORKER_NAME): the session's worker answers on the
    # same broker, and replies are keyed by node name.
    node = f'config-test@{socket.gethostname()}'
    env = dict(service_env, CELERY_WORKER_MAX_TASKS_PER_CHILD='123', CELERY_TASK_TIME_LIMIT='77',
               CELERY_BROKER_TRANSPORT_OPTIONS='{"max_connections": 40}', WORKER_NAME='config-test@%h')
    svc = Service(env, str(tmp_path))
    svc.start('worker')
    try:
        svc.wait_worker(node)
        result = subprocess.run(
            [sys.executable, '-m', 'celery', '-A', 'worker.main', 'inspect', 'conf', '--json',
             '--timeout', '5', '--destination', node],
            cwd=ROOT, env=service_env, capture_output=True, text=True, timeout=60)
    finally:
        svc.stop_all()
    assert result.returncode == 0, result.stdout + result.stderr
    conf = json.loads(result.stdout.strip().splitlines()[-1])[node]
    assert conf['worker_max_tasks_per_child'] == 123
    assert conf['task_time_limit'] == 77.0
    assert conf['broker_transport_options']['max_connections'] == 40
    # The service's own choices stay as they are.
    assert conf['task_acks_late'] is True and conf['accept_content'] == ['json']
    assert conf['broker_transport_options']['visibility_timeout'] == 300


@pytest.mark.parametrize('name, extra, wanted', [
    ('worker', {'CELERY_TASK_ACKS_LATE': 'false'}, ['CELERY_TASK_ACKS_LATE must stay true']),
    ('worker', {'CELERY_ACCEPT_CONTENT': 'json,pickle'}, ['CELERY_ACCEPT_CONTENT']),
    ('worker', {'CELERY_TASK_TIME_LIMT': '60'},
     ['CELERY_TASK_TIME_LIMT is not a setting (did you mean CELERY_TASK_TIME_LIMIT?)']),
    ('web', {'WORKER_BATCHSIZE': '10'},
     ['WORKER_BATCHSIZE is not a setting (did you mean WORKER_BATCH_SIZE?)']),
    ('beat', {'SQLALCHEMY_POOLSIZE': '3'}, ['SQLALCHEMY_POOLSIZE', 'SQLALCHEMY_POOL_SIZE']),
])
def test_an_unsafe_or_unknown_setting_stops_the_start(service_env, tmp_path, name, extra, wanted):
    env = dict(service_env, **PRODUCTION, **extra)
    svc = Service(dict(service_env), str(tmp_path))
    process = svc.start(name, **env)
    try:
        code = process.popen.wait(60)
    finally:
        svc.stop_all()
    log = process.log()
    assert code != 0, log[-2000:]
    for phrase in wanted:
        assert phrase in log, log[-3000:]
    # The message names variables, never their values.
    for secret in (PRODUCTION['FLASK_SECRET_KEY'], PRODUCTION['FLASK_API_TOKENS']):
        assert secret not in log
