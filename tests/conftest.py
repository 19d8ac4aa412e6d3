"""Shared fixtures: an app on the test databases, and a clean schema per test.

The databases come from TEST_DATABASE_URL and TEST_DATABASE2_URL (defaults:
the local ds_test and ds2_test that `manage.py setup` creates).
"""
import os
from unittest.mock import patch

import pytest

DATABASE_URL = os.environ.get('TEST_DATABASE_URL', 'postgresql://ds:dsps@127.0.0.1:5432/ds_test')
DATABASE2_URL = os.environ.get('TEST_DATABASE2_URL', 'postgresql://ds:dsps@127.0.0.1:5432/ds2_test')


def redis_url(db):
    """The tests' Redis (TEST_BROKER_URL's server: the machine's, or the one
    `manage.py test` embedded) with database `db`, for a module's own database."""
    from urllib.parse import urlsplit
    broker = urlsplit(os.environ.get('TEST_BROKER_URL', 'redis://127.0.0.1:6379/12'))
    return broker._replace(path=f'/{db}').geturl()


# The two PostgreSQL drivers: psycopg 3 (postgresql://, the default) and psycopg2.
DRIVERS = ('psycopg', 'psycopg2')


def with_driver(url, driver):
    """`url` with the driver named in its scheme (postgresql+psycopg2://...)."""
    return url.replace('postgresql://', f'postgresql+{driver}://', 1)


# The tests run the service in development mode (open API, fixed secrets);
# tests/unit/test_security.py and tests/e2e/test_security.py set production themselves.
os.environ['SERVICE_MODE'] = 'development'

# The seed's examples define their own models: they run in a pytest of their own.
collect_ignore = ['seed_examples']


def pytest_addoption(parser):
    parser.addoption('--big', action='store_true',
                     help='run the fault and chaos tests at their big size')


@pytest.fixture(scope='session')
def big(request):
    """True when the suite runs at the big size (--big)."""
    return request.config.getoption('--big')


@pytest.fixture(scope='session', autouse=True)
def fresh_schema():
    """Every table dropped and made again once per run, so the schema is the
    models' own even where an older run left other tables."""
    from sqlalchemy import create_engine

    import ledger  # noqa: F401  (the jobs table)
    import tasks
    from pg.orm import BaseModel
    tasks.load_all()
    for url in (DATABASE_URL, DATABASE2_URL):
        engine = create_engine(url)
        BaseModel.metadata.drop_all(engine)
        BaseModel.metadata.create_all(engine)
        engine.dispose()


@pytest.fixture
def pg_driver():
    """The driver of the `env` fixture's URLs; a module overrides it with a
    fixture parametrized by DRIVERS to run its tests on both."""
    return 'psycopg'


@pytest.fixture
def env(pg_driver):
    """The environment of a service on both test databases."""
    values = {
        'FLASK_CONFIG_PREFIXES': 'SQLALCHEMY',
        'SQLALCHEMY_DEFAULT': with_driver(DATABASE_URL, pg_driver),
        'SQLALCHEMY_DB2': with_driver(DATABASE2_URL, pg_driver),
    }
    with patch.dict(os.environ, values):
        yield values


@pytest.fixture
def app(env):
    from app import get_or_create_app
    import tasks.music, tasks.users  # noqa: F401  (the models)
    return get_or_create_app('tests')


@pytest.fixture
def db(app):
    """A Database with every table created and empty, inside an app context."""
    from pg import init_db
    with app.app_context():
        database = init_db(app)
        database.syncdb()
        database.cleandb()
        yield database
        database.pool.close()


def pytest_collection_modifyitems(session, config, items):
    """tests/hosts first, on a machine not yet busy with the other suites' leftovers
    (its database relay, started without waiting, was not listening in time
    after the fault suite: it is waited for now)."""
    items.sort(key=lambda item: 0 if '/tests/hosts/' in str(item.fspath) else 1)
