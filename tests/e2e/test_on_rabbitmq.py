"""What only RabbitMQ has: /health and /metrics name it, and a front whose
RabbitMQ does not answer records nothing. The pipeline and worker chaos tests
run on RabbitMQ too, in their own modules (tests/e2e/brokers.py); these run
only there, with the service of the module's own on RabbitMQ
(TEST_RABBITMQ_URL), skipped where none answers (never in CI)."""
import pytest

from tests.e2e.brokers import ON_RABBITMQ
from tests.e2e.service import free_port

pytestmark = ON_RABBITMQ


@pytest.fixture(scope='module')
def service(broker_service):
    """The module's service: the one on RabbitMQ (`clean` goes through it too)."""
    return broker_service


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
