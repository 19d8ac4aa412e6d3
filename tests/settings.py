"""The servers the tests use, from the TEST_* variables: test modules,
helpers and conftest.py files all import them from here (a conftest.py is
pytest's, for fixtures).

Databases: TEST_DATABASE_URL and TEST_DATABASE2_URL (defaults: the local
ds_test and ds2_test that `manage.py setup` creates). Brokers: Redis
(TEST_BROKER_URL, a database of the tests' own) and RabbitMQ
(TEST_RABBITMQ_URL, a virtual host of the tests' own is best); TEST_BROKER
names the one the e2e and fault suites run on.
"""
import os
from urllib.parse import urlsplit

DATABASE_URL = os.environ.get('TEST_DATABASE_URL', 'postgresql://ds:dsps@127.0.0.1:5432/ds_test')
DATABASE2_URL = os.environ.get('TEST_DATABASE2_URL', 'postgresql://ds:dsps@127.0.0.1:5432/ds2_test')
# The admin role that makes and drops the migration tests' throwaway databases.
ADMIN_URL = os.environ.get('PG_ADMIN_URL', 'postgresql://postgres@127.0.0.1:5432/postgres')

# The two PostgreSQL drivers: psycopg 3 (postgresql://, the default) and psycopg2.
DRIVERS = ('psycopg', 'psycopg2')

REDIS_URL = os.environ.get('TEST_BROKER_URL', 'redis://127.0.0.1:6379/12')
RABBITMQ_URL = os.environ.get('TEST_RABBITMQ_URL', 'amqp://guest:guest@127.0.0.1:5672//')
BROKERS = {'redis': REDIS_URL, 'rabbitmq': RABBITMQ_URL}
TEST_BROKER = os.environ.get('TEST_BROKER', 'redis')
if TEST_BROKER not in BROKERS:
    raise ValueError(f'TEST_BROKER must be one of {", ".join(BROKERS)}, not {TEST_BROKER!r}')
BROKER_URL = BROKERS[TEST_BROKER]


def redis_url(db):
    """The tests' Redis (TEST_BROKER_URL's server: the machine's, or the one
    `manage.py test` embedded) with database `db`, for a module's own database."""
    return urlsplit(REDIS_URL)._replace(path=f'/{db}').geturl()


def with_driver(url, driver):
    """`url` with the driver named in its scheme (postgresql+psycopg2://...)."""
    return url.replace('postgresql://', f'postgresql+{driver}://', 1)
