"""Shared fixtures: an app on the test databases, and a clean schema per test.

The databases come from TEST_DATABASE_URL and TEST_DATABASE2_URL
(tests/settings.py, where test modules import them from).
"""
import os
from unittest.mock import patch

import pytest

from tests.settings import ADMIN_URL, DATABASE2_URL, DATABASE_URL, with_driver

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


@pytest.fixture
def new_database():
    """A factory of empty databases owned by the test role (the one of
    TEST_DATABASE_URL); each is dropped when the test ends."""
    import uuid

    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url
    admin = make_url(ADMIN_URL)
    owner = make_url(DATABASE_URL)
    made = []

    def admin_run(statement):
        with psycopg.connect(host=admin.host, port=admin.port, user=admin.username,
                             password=admin.password, dbname=admin.database or 'postgres',
                             autocommit=True) as conn:
            conn.execute(statement)

    def make():
        name = f'ds_mig_{uuid.uuid4().hex[:12]}'
        admin_run(sql.SQL('CREATE DATABASE {} OWNER {}').format(
            sql.Identifier(name), sql.Identifier(owner.username)))
        made.append(name)
        return owner.set(database=name).render_as_string(hide_password=False)

    yield make
    for name in made:
        admin_run(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(name)))


def pytest_collection_modifyitems(session, config, items):
    """tests/hosts first, on a machine not yet busy with the other suites' leftovers
    (its database relay, started without waiting, was not listening in time
    after the fault suite: it is waited for now)."""
    items.sort(key=lambda item: 0 if '/tests/hosts/' in str(item.fspath) else 1)
