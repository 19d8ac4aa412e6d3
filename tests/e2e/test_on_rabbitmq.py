"""The pipeline and the worker chaos (exactly-once) tests again, on RabbitMQ
(TEST_RABBITMQ_URL), whatever broker TEST_BROKER gives the other modules:
CI runs them on both brokers. The tests are test_pipeline's and
test_worker_chaos's own, imported; this module's `service` (web and worker on
RabbitMQ, on ports of their own) stands in for the session's."""
import os
import socket
from urllib.parse import urlsplit

import pytest

from tests.e2e import test_pipeline, test_worker_chaos
from tests.e2e.conftest import RABBITMQ_URL, free_port, start_service


def _answers(url):
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 5672), timeout=2):
            return True
    except OSError:
        return False


# A machine without RabbitMQ (manage.py test on embedded servers) skips these;
# CI, which has one, never does.
pytestmark = pytest.mark.skipif(not os.environ.get('CI') and not _answers(RABBITMQ_URL),
                                reason=f'no RabbitMQ answers at {urlsplit(RABBITMQ_URL).hostname}')

# The same test functions, collected here a second time with this module's fixtures.
globals().update({name: test for name, test in vars(test_pipeline).items()
                  if name.startswith('test_')})
test_jobs_survive_repeated_worker_kills = test_worker_chaos.test_jobs_survive_repeated_worker_kills


@pytest.fixture(scope='module')
def service(service_env, tmp_path_factory):
    """web and worker on RabbitMQ (its quorum queue, publisher confirms)."""
    env = {**service_env, 'CELERY_BROKER_URL': RABBITMQ_URL,
           'PORT': str(free_port()), 'FLOWER_PORT': str(free_port())}
    with start_service(env, str(tmp_path_factory.mktemp('logs-rabbitmq'))) as svc:
        assert svc.http.get(svc.url + '/health').json()['checks'] == {
            'postgres': 'ok', 'rabbitmq': 'ok'}
        yield svc


def test_health_and_metrics_name_rabbitmq(service):
    metrics = service.http.get(service.url + '/metrics').text
    assert 'jobs_metrics_up{source="rabbitmq"} 1.0' in metrics
    assert 'jobs_queue_depth{queue="jobs"}' in metrics


def test_rabbitmq_down_is_503_and_nothing_is_recorded(clean):
    """A web front whose RabbitMQ does not answer: 503 with Retry-After, the
    recorded job withdrawn; /health names rabbitmq."""
    from web import create_app
    app = create_app(config={'SQLALCHEMY_DEFAULT': clean.env['SQLALCHEMY_DEFAULT'],
                             'CELERY_BROKER_URL': f'amqp://guest:guest@127.0.0.1:{free_port()}//',
                             'CELERY_PUBLISH_TIMEOUT': 1.0, 'FLASK_API_TOKENS': ''})
    client = app.test_client()
    response = client.post('/jobs/genre.create', json={'name': 'nope', 'description': 'd'})
    assert response.status_code == 503 and int(response.headers['Retry-After']) > 0
    assert response.get_json()['code'] == 503
    health = client.get('/health')
    assert health.status_code == 503
    assert health.get_json()['checks'] == {'postgres': 'ok', 'rabbitmq': 'down'}
    assert clean.sql('SELECT count(*) FROM jobs')[0][0] == 0
