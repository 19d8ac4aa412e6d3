"""The fixtures of a module that tests the service in-process: apps on the
test database, with a Redis database of the module's own as the broker.

    broker, make_app, clean, app, client = service_fixtures(BROKER_URL)
"""
import pytest
import redis

from tests.settings import DATABASE_URL


def emptied_redis(url):
    """A fixture's body: the Redis database at `url`, emptied before and after."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def kill_client_backends():
    """Terminate every other client connection to the test database (what a
    database restart or an idle timeout does to a pool's connections)."""
    from sqlalchemy import create_engine, text
    killer = create_engine(DATABASE_URL)
    with killer.connect() as conn:
        killed = conn.execute(text(
            'SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity '
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'")).scalar()
    killer.dispose()
    assert killed >= 1


def service_fixtures(broker_url):
    @pytest.fixture(scope='module', autouse=True)
    def broker():
        """An empty Redis database for the messages of the module."""
        yield from emptied_redis(broker_url)

    @pytest.fixture
    def make_app(env):
        """Build a service app on the test database and broker, `overrides` winning.
        Called outside any app context (get_or_create_app would reuse that app)."""
        from web import create_app

        def make(**overrides):
            return create_app(config={'SQLALCHEMY_DEFAULT': DATABASE_URL,
                                      'CELERY_BROKER_URL': broker_url,
                                      'CELERY_PUBLISH_TIMEOUT': 1.0,
                                      'FLASK_API_TOKENS': '', **overrides})
        return make

    @pytest.fixture
    def clean(make_app, broker):
        """The tables created and emptied, and the queue emptied, through an
        app on the real database."""
        from pg import init_db
        app = make_app()
        with app.app_context():
            database = init_db(app)
            database.syncdb()
            database.cleandb()
        broker.flushdb()
        return app

    @pytest.fixture
    def app(clean):
        return clean

    @pytest.fixture
    def client(app):
        return app.test_client()

    return broker, make_app, clean, app, client
