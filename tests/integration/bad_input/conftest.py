"""The apps the bad requests go to (Flask's test client), on the real test
database and Redis db 13, module by module."""
import pytest

from tests.integration.bad_input.checks import BROKER_URL, SMALL_LIMIT, build_app
from tests.integration.service import emptied_redis


@pytest.fixture(scope='module', autouse=True)
def broker():
    """An empty Redis database of this module's own for the messages."""
    yield from emptied_redis(BROKER_URL)


@pytest.fixture(scope='module')
def app(broker):
    return build_app()


@pytest.fixture(scope='module')
def client(app):
    return app.test_client()


@pytest.fixture(scope='module')
def small_client(broker):
    return build_app(FLASK_MAX_CONTENT_LENGTH=SMALL_LIMIT).test_client()


@pytest.fixture(scope='module')
def token_client(broker):
    return build_app(FLASK_API_TOKENS='t1,s3cret-token').test_client()
