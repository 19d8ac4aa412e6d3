"""The whole service started as processes, from the Procfile's own commands,
against the machine's PostgreSQL and broker: Redis (a database of the
tests' own, TEST_BROKER_URL) or, with TEST_BROKER=rabbitmq, RabbitMQ
(TEST_RABBITMQ_URL, a virtual host of the tests' own is best).
The pipeline and chaos tests run again on RabbitMQ whatever TEST_BROKER says
(tests/e2e/brokers.py). The processes and their client: tests/e2e/service.py."""
import os
import sys
import time

import pytest

from tests.e2e.service import FLOWER_AUTH, free_port, start_service
from tests.settings import BROKER_URL, DATABASE_URL, RABBITMQ_URL


@pytest.fixture(scope='session')
def service_env():
    env = dict(os.environ)
    env.update({
        'PATH': os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', ''),
        'FLASK_CONFIG_PREFIXES': 'FLASK,SQLALCHEMY,CELERY',
        'SQLALCHEMY_DEFAULT': DATABASE_URL,
        'CELERY_BROKER_URL': BROKER_URL,
        'PORT': str(free_port()),
        'FLOWER_PORT': str(free_port()),
        'FLOWER_BASIC_AUTH': FLOWER_AUTH,
        'WEB_CONCURRENCY': '2',
        'WORKER_CONCURRENCY': '2',
        'SQLALCHEMY_LOCK_TIMEOUT_MS': '300',
        'WORKER_MAX_ATTEMPTS': '4',
        'WORKER_RETRY_BASE_SECONDS': '0.2',
        'WORKER_RETRY_MAX_SECONDS': '1',
        'WORKER_SWEEP_AGE_SECONDS': '2',
        'FLASK_API_TOKENS': '',
    })
    env.pop('FLASK_MAX_CONTENT_LENGTH', None)
    return env


@pytest.fixture(scope='session')
def service(service_env, tmp_path_factory):
    """web and worker running; the tables made; the test broker empty. On
    ports of their own: modules that start a service of theirs take
    service_env's while this one runs."""
    env = {**service_env, 'PORT': str(free_port()), 'FLOWER_PORT': str(free_port())}
    with start_service(env, str(tmp_path_factory.mktemp('logs'))) as svc:
        yield svc


@pytest.fixture(scope='module')
def broker_service(request, service_env, tmp_path_factory):
    """The service the module's jobs go through: the session's, or with the
    parameter 'rabbitmq' (a module marked by tests/e2e/brokers.py) web and
    worker on RabbitMQ (its quorum queue, publisher confirms), on ports of
    their own."""
    if getattr(request, 'param', 'session') == 'session':
        yield request.getfixturevalue('service')
        return
    env = {**service_env, 'CELERY_BROKER_URL': RABBITMQ_URL,
           'PORT': str(free_port()), 'FLOWER_PORT': str(free_port())}
    with start_service(env, str(tmp_path_factory.mktemp('logs-rabbitmq'))) as svc:
        assert svc.http.get(svc.url + '/health').json()['checks'] == {
            'postgres': 'ok', 'rabbitmq': 'ok'}
        yield svc


@pytest.fixture
def clean(broker_service):
    """Empty tables (after the worker has finished what it had)."""
    service = broker_service
    deadline = time.monotonic() + 30
    while service.sql("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")[0][0]:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    with service.app.app_context():
        service.db.cleandb()
    return service
