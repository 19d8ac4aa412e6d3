"""Fault injection against a PostgreSQL and a broker of the tests' own:
a Redis, or with TEST_BROKER=rabbitmq a RabbitMQ node.

Each test starts its own PostgreSQL cluster (initdb + pg_ctl, as the
`postgres` OS user when run as root) and its own redis-server, both on free
ports, then the Procfile's web, worker and beat against them. The tests stop
and restart those instances, never the machine's shared ones, and every
instance is stopped and deleted at the end, whatever happened.

The servers: own_postgres.py, own_brokers.py; the run of a test (a stream
of jobs, the fault, the assessment): outage.py, stream.py, assessment.py.
"""
import atexit
import os
import sys

import pytest

from tests.e2e.service import FLOWER_AUTH, Service, free_port
from tests.faults.own_brokers import OwnRabbitMQ, OwnRedis
from tests.faults.own_postgres import OwnPostgres
from tests.settings import TEST_BROKER


@pytest.fixture(scope='session', autouse=True)
def fresh_schema():
    """Replaces tests/conftest.py's: these tests never touch the shared
    database (their own PostgreSQL gets its tables from the Service's app)."""
    yield


@pytest.fixture
def own_postgres():
    pg = OwnPostgres()
    atexit.register(pg.cleanup)  # also when the run is interrupted past the fixture
    try:
        pg.init()
        yield pg
    finally:
        pg.cleanup()
        atexit.unregister(pg.cleanup)


@pytest.fixture
def own_redis():
    """The broker of the test's own: Redis, or RabbitMQ with TEST_BROKER=rabbitmq."""
    server = OwnRabbitMQ() if TEST_BROKER == 'rabbitmq' else OwnRedis()
    atexit.register(server.cleanup)
    try:
        yield server.start()
    finally:
        server.cleanup()
        atexit.unregister(server.cleanup)


SERVICE_PREFIXES = ('FLASK_', 'SQLALCHEMY_', 'CELERY_', 'WORKER_', 'TEST_DATABASE')


@pytest.fixture
def fault_env(own_postgres, own_redis, tmp_path):
    """The service's environment: only the test's own PostgreSQL and Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_PREFIXES)}
    env.update({
        'PATH': os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', ''),
        'FLASK_CONFIG_PREFIXES': 'FLASK,SQLALCHEMY,CELERY',
        'FLASK_API_TOKENS': '',
        'SQLALCHEMY_DEFAULT': own_postgres.url,
        'CELERY_BROKER_URL': own_redis.url,
        'PORT': str(free_port()),
        'FLOWER_PORT': str(free_port()),
        'FLOWER_BASIC_AUTH': FLOWER_AUTH,
        'WEB_CONCURRENCY': '2',
        'WORKER_CONCURRENCY': '2',
        'WORKER_RETRY_BASE_SECONDS': '0.2',
        'WORKER_RETRY_MAX_SECONDS': '2',
        'WORKER_SWEEP_AGE_SECONDS': '3',
        'WORKER_STALE_RUNNING_SECONDS': '5',
        'WORKER_SWEEP_EVERY_SECONDS': '1',
        # Small messages: a burst is then more messages than the worker
        # prefetches (16), so some still wait in Redis when it is killed.
        'WORKER_BATCH_SIZE': '10',
        'BEAT_SCHEDULE_FILE': str(tmp_path / 'beat-schedule'),
    })
    return env


@pytest.fixture
def fault_service(fault_env, own_postgres, own_redis, tmp_path):
    """web, worker and beat running on the test's own PostgreSQL and Redis,
    the tables made. Yields the Service, with `.postgres` and `.redis`."""
    log_dir = tmp_path / 'logs'
    log_dir.mkdir()
    svc = Service(fault_env, str(log_dir))
    svc.postgres, svc.redis = own_postgres, own_redis  # .redis: the broker (RabbitMQ too)
    with svc.app.app_context():
        svc.db.syncdb('default')
    try:
        svc.start('web')
        svc.start('worker')
        svc.start('beat')
        svc.wait_web()
        svc.wait_worker(timeout=60)
        yield svc
    finally:
        svc.stop_all()
        for connection in svc.db.pool.connections.values():
            connection.engine.dispose()
