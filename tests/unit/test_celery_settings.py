"""Every documented Celery setting can be given as CELERY_<NAME>, typed by
Celery's own table; the exactly-once choices cannot be undone."""
import pytest
from celery.app.defaults import DEFAULTS

from service import settings
from service import celery_settings
from service.errors import ConfigError
from service.celery_config import celery_config


def conf(**given):
    return celery_config(settings.load({}, given))


def test_every_celery_setting_has_its_name():
    assert {n.lower()[len('CELERY_'):] for n in celery_settings.names()} == set(DEFAULTS)
    assert 'CELERY_TASK_TIME_LIMIT' in celery_settings.names()
    assert 'CELERY_WORKER_MAX_TASKS_PER_CHILD' in celery_settings.names()


def test_values_are_typed_as_celery_types_them():
    found = conf(CELERY_TASK_TIME_LIMIT='30', CELERY_WORKER_MAX_TASKS_PER_CHILD='100',
                 CELERY_TASK_TRACK_STARTED='yes', CELERY_TIMEZONE='Europe/Paris',
                 CELERY_IMPORTS='a.b, c.d', CELERY_TASK_ROUTES='{"x": {"queue": "jobs"}}',
                 CELERY_TASK_SOFT_TIME_LIMIT='none',
                 CELERY_BROKER_TRANSPORT_OPTIONS='{"max_connections": 20}')
    assert found['task_time_limit'] == 30.0
    assert found['worker_max_tasks_per_child'] == 100
    assert found['task_track_started'] is True
    assert found['timezone'] == 'Europe/Paris'
    assert found['imports'] == ('a.b', 'c.d')
    assert found['task_routes'] == {'x': {'queue': 'jobs'}}
    assert found['task_soft_time_limit'] is None
    # Transport options given are merged under the service's own.
    assert found['broker_transport_options'] == {
        'max_connections': 20, 'visibility_timeout': 300, 'socket_connect_timeout': 2.0,
        'socket_timeout': 2.0}


def test_the_service_settings_keep_working():
    found = conf(CELERY_BROKER_URL='redis://example:1/2', CELERY_PREFETCH_MULTIPLIER='3',
                 CELERY_VISIBILITY_TIMEOUT='600', CELERY_PUBLISH_TIMEOUT='1.5')
    assert found['broker_url'] == 'redis://example:1/2'
    assert found['worker_prefetch_multiplier'] == 3
    assert found['broker_transport_options'] == {'visibility_timeout': 600,
                                                 'socket_connect_timeout': 1.5,
                                                 'socket_timeout': 1.5}
    # Celery's own name of the prefetch wins when given.
    assert conf(CELERY_WORKER_PREFETCH_MULTIPLIER='1')['worker_prefetch_multiplier'] == 1


def test_a_bad_value_is_an_error_naming_the_setting():
    with pytest.raises(ConfigError, match='CELERY_TASK_TIME_LIMIT'):
        conf(CELERY_TASK_TIME_LIMIT='soon')
    with pytest.raises(ConfigError, match='CELERY_BROKER_TRANSPORT_OPTIONS'):
        conf(CELERY_BROKER_TRANSPORT_OPTIONS='[1]')


@pytest.mark.parametrize('name, value', [
    ('CELERY_TASK_ACKS_LATE', 'false'),
    ('CELERY_TASK_REJECT_ON_WORKER_LOST', '0'),
    ('CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT', 'off'),
    ('CELERY_TASK_ALWAYS_EAGER', 'true'),
    ('CELERY_TASK_IGNORE_RESULT', 'no'),
    ('CELERY_TASK_SERIALIZER', 'pickle'),
    ('CELERY_RESULT_SERIALIZER', 'pickle'),
    ('CELERY_EVENT_SERIALIZER', 'yaml'),
    ('CELERY_ACCEPT_CONTENT', 'json,pickle'),
    ('CELERY_RESULT_ACCEPT_CONTENT', '["pickle"]'),
    ('CELERY_TASK_DEFAULT_QUEUE', 'celery'),
])
def test_an_unsafe_override_is_refused_naming_it(name, value):
    with pytest.raises(celery_settings.UnsafeCeleryConfigError, match=name):
        conf(**{name: value})


def test_safe_values_of_the_guarded_settings_pass():
    found = conf(CELERY_TASK_ACKS_LATE='true', CELERY_ACCEPT_CONTENT='application/json',
                 CELERY_TASK_DEFAULT_QUEUE='jobs')
    assert found['task_acks_late'] is True and found['accept_content'] == ['application/json']


def test_annotations_and_transport_options_may_not_go_round_the_guard():
    with pytest.raises(celery_settings.UnsafeCeleryConfigError, match='acks_late'):
        conf(CELERY_TASK_ANNOTATIONS='{"*": {"acks_late": false}}')
    with pytest.raises(celery_settings.UnsafeCeleryConfigError, match='CELERY_VISIBILITY_TIMEOUT'):
        conf(CELERY_BROKER_TRANSPORT_OPTIONS='{"visibility_timeout": 5}')
    assert conf(CELERY_TASK_ANNOTATIONS='{"*": {"rate_limit": "10/s"}}')['task_annotations']
