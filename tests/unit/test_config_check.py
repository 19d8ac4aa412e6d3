"""A prefixed variable that nothing reads is a start-up error in production
(naming it and the closest known name), a warning in development; a
platform's DATABASE_URL and REDIS_URL come after the service's own names."""
import logging

import pytest

from service import config_check
from service import settings
from service.config_check import UnknownSettingError, check, problems


def test_misspelt_and_old_names_are_found_with_the_closest_known():
    found = problems({'CELERY_TASK_TIME_LIMT': '5', 'CELERY_ACKS_LATE': 'false',
                      'SQLALCHEMY_POOLSIZE': '3', 'WORKER_BATCHSIZE': '10',
                      'FLASK_SECRETKEY': 'x'})
    assert found == [
        'CELERY_ACKS_LATE is not a setting (did you mean CELERY_TASK_ACKS_LATE?)',
        'CELERY_TASK_TIME_LIMT is not a setting (did you mean CELERY_TASK_TIME_LIMIT?)',
        'FLASK_SECRETKEY is not a setting (did you mean FLASK_SECRET_KEY?)',
        'SQLALCHEMY_POOLSIZE is not a setting (did you mean SQLALCHEMY_POOL_SIZE?)',
        'WORKER_BATCHSIZE is not a setting (did you mean WORKER_BATCH_SIZE?)',
    ]


def test_what_is_read_passes():
    assert problems({
        'SQLALCHEMY_DEFAULT': 'postgresql://ds@h/ds', 'SQLALCHEMY_DB2': 'postgresql://ds@h/ds2',
        'CELERY_TASK_TIME_LIMIT': '30', 'CELERY_BROKER_URL': 'redis://h/0',
        'WORKER_CONCURRENCY': '4', 'WORKER_BATCH_SIZE': '10', 'FLASK_APP': 'web',
        'FLASK_RUN_PORT': '5000', 'FLASK_API_TOKENS': 't', 'SERVICE_MODE': 'development',
        # the seed's own prefixes are the user's: not checked
        'FLASK_CONFIG_PREFIXES': 'FLASK,SQLALCHEMY,CELERY,AWS', 'AWS_SECRET': 's', 'PATH': '/bin',
    }) == []


def test_own_names_are_listed_and_a_database_is_a_url():
    env = {'FLASK_BH_DEBUG_LEVEL': 'DEBUG', 'SQLALCHEMY_REPORTS': 'postgresql://r@h/r',
           'SQLALCHEMY_REPORT': 'nope'}
    assert problems(env) == [
        'FLASK_BH_DEBUG_LEVEL is not a setting (did you mean FLASK_DEBUG?)',
        'SQLALCHEMY_REPORT is not a setting (did you mean SQLALCHEMY_PGBOUNCER?)']
    assert problems({**env, 'FLASK_CONFIG_EXTRA_NAMES': 'flask_bh_debug_level, SQLALCHEMY_REPORT'}) == []


def test_a_variable_of_an_unloaded_prefix_is_named():
    env = {'FLASK_CONFIG_PREFIXES': 'FLASK,SQLALCHEMY', 'CELERY_TASK_TIME_LIMIT': '30',
           'CELERY_BROKER_URL': 'redis://h/0'}  # a setting of the service: read whatever the prefixes
    assert problems(env) == ['CELERY_TASK_TIME_LIMIT is not read: CELERY is not in FLASK_CONFIG_PREFIXES']


def test_production_refuses_naming_every_one_development_warns(caplog):
    env = {'CELERY_TASK_TIME_LIMT': '5', 'WORKER_BATCHSIZE': '1'}
    with pytest.raises(UnknownSettingError) as error:
        check({'SERVICE_MODE': 'production'}, env)
    assert 'CELERY_TASK_TIME_LIMT' in str(error.value) and 'CELERY_TASK_TIME_LIMIT' in str(error.value)
    assert 'WORKER_BATCHSIZE' in str(error.value)
    with caplog.at_level(logging.WARNING, logger='config'):
        check({'SERVICE_MODE': 'development'}, env)
    assert [r.getMessage() for r in caplog.records if r.name == 'config'] == [
        'setting ignored: CELERY_TASK_TIME_LIMT is not a setting (did you mean CELERY_TASK_TIME_LIMIT?)',
        'setting ignored: WORKER_BATCHSIZE is not a setting (did you mean WORKER_BATCH_SIZE?)']


def test_the_message_holds_names_not_values():
    with pytest.raises(UnknownSettingError) as error:
        check({'SERVICE_MODE': 'production'}, {'FLASK_SECRET_KY': 'very-secret-value-123'})
    assert 'FLASK_SECRET_KY' in str(error.value) and 'very-secret-value-123' not in str(error.value)


def test_the_app_factory_checks(monkeypatch):
    from web import create_app
    monkeypatch.setenv('CELERY_WORKER_MAX_TASKS_PER_CHLD', '10')
    monkeypatch.setenv('SERVICE_MODE', 'production')
    secrets = {'FLASK_SECRET_KEY': 'k' * 40, 'FLASK_API_TOKENS': 't' * 20,
               'FLOWER_BASIC_AUTH': 'admin:' + 'p' * 20, 'SQLALCHEMY_DEFAULT': 'postgresql://ds@h/ds'}
    with pytest.raises(UnknownSettingError, match='CELERY_WORKER_MAX_TASKS_PER_CHILD'):
        create_app(secrets)


# DATABASE_URL and REDIS_URL: a platform's names, after the service's own.

def test_platform_urls_fill_in_when_the_service_names_are_unset():
    config = settings.load({'DATABASE_URL': 'postgres://u:p@db:5432/app',
                            'REDIS_URL': 'redis://:pw@cache:6379/1'})
    assert config['SQLALCHEMY_DEFAULT'] == 'postgresql://u:p@db:5432/app'
    assert config['CELERY_BROKER_URL'] == 'redis://:pw@cache:6379/1'


def test_the_service_names_win_over_the_platform_urls():
    config = settings.load({'DATABASE_URL': 'postgres://u:p@db/app', 'REDIS_URL': 'redis://cache/1',
                            'SQLALCHEMY_DEFAULT': 'postgresql://ds@own/ds',
                            'CELERY_BROKER_URL': 'redis://own/2'})
    assert config['SQLALCHEMY_DEFAULT'] == 'postgresql://ds@own/ds'
    assert config['CELERY_BROKER_URL'] == 'redis://own/2'
    # Overrides (tests) win over both; without any, the broker default stays.
    assert settings.load({'REDIS_URL': 'redis://cache/1'},
                         {'CELERY_BROKER_URL': 'redis://t/3'})['CELERY_BROKER_URL'] == 'redis://t/3'
    assert settings.load({})['CELERY_BROKER_URL'] == settings.SETTINGS['CELERY_BROKER_URL'].default
    assert 'SQLALCHEMY_DEFAULT' not in settings.load({})


def test_the_database_url_reaches_the_pool():
    from pg.pool import database_urls
    urls = database_urls(settings.load({'DATABASE_URL': 'postgres://u:p@db:5432/app'}))
    assert urls['default'].drivername == 'postgresql' and urls['default'].host == 'db'
    assert config_check.problems({'DATABASE_URL': 'x', 'REDIS_URL': 'y'}) == []
