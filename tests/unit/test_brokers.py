"""The broker chosen by the URL (service/brokers.py): each one's Celery
settings, publish options and retry delays."""
import pytest

from service import brokers
from service.celery_config import celery_config
from service.errors import ConfigError
from service.settings import load


def config(url, **more):
    return load({'CELERY_BROKER_URL': url, **more})


@pytest.mark.parametrize('url, kind', [
    ('redis://h:6379/0', brokers.REDIS), ('rediss://h/1', brokers.REDIS),
    ('amqp://u:p@h:5672/v', brokers.RABBITMQ), ('amqps://u:p@h/v', brokers.RABBITMQ),
    ('pyamqp://h//', brokers.RABBITMQ)])
def test_the_url_chooses_the_broker(url, kind):
    assert brokers.kind(url) == kind


@pytest.mark.parametrize('url', ['sqs://h', 'h:6379', 'memory://'])
def test_another_broker_is_refused_naming_the_setting(url):
    with pytest.raises(ConfigError, match='CELERY_BROKER_URL'):
        celery_config(config(url))


def test_rabbitmq_gets_a_durable_quorum_queue_publisher_confirms_and_json_only():
    conf = celery_config(config('amqp://u:p@h:5672/v', CELERY_PUBLISH_TIMEOUT='1.5'))
    [queue] = conf['task_queues']
    assert queue.name == conf['task_default_queue'] == 'jobs' and queue.durable
    assert queue.queue_arguments == {'x-queue-type': 'quorum',
                                     'x-delivery-limit': brokers.DELIVERY_LIMIT}
    assert queue.exchange.type == 'topic'  # Celery's native delayed delivery binds to it
    assert conf['broker_transport_options']['confirm_publish'] is True
    assert 'visibility_timeout' not in conf['broker_transport_options']
    assert conf['broker_connection_timeout'] == 1.5
    assert conf['accept_content'] == ['json'] and conf['task_serializer'] == 'json'
    assert brokers.publish_options(config('amqp://h//', CELERY_PUBLISH_TIMEOUT='1.5')) == {
        'timeout': 1.5, 'confirm_timeout': 1.5}


def test_the_visibility_timeout_is_checked_on_redis_only():
    slow = {'WORKER_RETRY_MAX_SECONDS': '400', 'CELERY_VISIBILITY_TIMEOUT': '300'}
    with pytest.raises(ConfigError, match='VISIBILITY_TIMEOUT'):
        celery_config(config('redis://h/0', **slow))
    celery_config(config('amqp://h//', **slow))
    assert brokers.publish_options(config('redis://h/0')) == {}
    assert 'task_queues' not in celery_config(config('redis://h/0'))


def test_a_transport_option_given_cannot_turn_confirms_off():
    conf = celery_config(config('amqp://h//',
                                CELERY_BROKER_TRANSPORT_OPTIONS='{"confirm_publish": false}'))
    assert conf['broker_transport_options']['confirm_publish'] is True


def test_every_process_on_redis_reuses_one_client_per_channel():
    # kombu builds a redis-py client per command; building one cost more CPU
    # than the publish it was for (service/redis_transport.py).
    from kombu import Connection

    from service import redis_transport
    from worker import broker
    conf = celery_config(config('redis://127.0.0.1:6379/0'))
    assert conf['broker_transport'] == redis_transport.TRANSPORT
    assert 'broker_transport' not in celery_config(config('amqp://u:p@h:5672/v'))
    assert issubclass(broker.Channel, redis_transport.Channel)
    assert issubclass(broker.HeadChannel, redis_transport.Channel)
    with Connection('redis://127.0.0.1:6379/0', transport=conf['broker_transport']) as connection:
        channel = connection.default_channel
        assert isinstance(channel, redis_transport.Channel)
        first = channel._create_client()
        assert channel._create_client() is first
        with channel.conn_or_acquire() as client:
            assert client is first
        channel._pool = None  # a new pool (after a reconnection): a new client on it
        assert channel._create_client() is not first


def test_rate_limits_are_counted_in_a_redis_broker_else_in_each_process():
    from web.rate_limits import _storage
    assert _storage({'CELERY_BROKER_URL': 'redis://h/1'}) == 'redis://h/1'
    assert _storage({'CELERY_BROKER_URL': 'amqp://u:p@h//'}) == 'memory://'
    assert _storage({'CELERY_BROKER_URL': 'amqp://u:p@h//',
                     'FLASK_RATE_LIMIT_STORAGE_URL': 'redis://r/2'}) == 'redis://r/2'
