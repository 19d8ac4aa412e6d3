import pytest

from service import settings
from service.celery_config import celery_config
from service.errors import ConfigError


def config(**overrides):
    return settings.load({}, overrides)


def test_delivery_is_at_least_once_and_json_only():
    conf = celery_config(config())
    assert conf['task_acks_late'] and conf['task_reject_on_worker_lost']
    assert conf['accept_content'] == ['json']
    assert conf['task_serializer'] == conf['result_serializer'] == conf['event_serializer'] == 'json'
    assert conf['broker_transport_options']['visibility_timeout'] > \
        settings.SETTINGS['WORKER_RETRY_MAX_SECONDS'].default


def test_settings_come_from_the_one_config():
    conf = celery_config(config(CELERY_BROKER_URL='redis://example:1/2', CELERY_PREFETCH_MULTIPLIER='3'))
    assert conf['broker_url'] == 'redis://example:1/2'
    assert conf['worker_prefetch_multiplier'] == 3


def test_a_retry_longer_than_the_visibility_timeout_is_refused():
    with pytest.raises(ConfigError, match='VISIBILITY'):
        celery_config(config(WORKER_RETRY_MAX_SECONDS='400', CELERY_VISIBILITY_TIMEOUT='300'))
