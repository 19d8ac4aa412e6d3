import os
import subprocess
import sys

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


# A pool process keeps the loaded app out of the collector's full passes, as
# the web does (tests/unit/test_gunicorn_conf.py).
FROZEN = '''
import gc
import worker.main
from celery import signals
tracked = len(gc.get_objects())
signals.worker_process_init.send(sender=None)
print(tracked, len(gc.get_objects()), gc.get_freeze_count())
'''


def test_a_pool_process_keeps_the_loaded_app_out_of_the_collectors_passes():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, SERVICE_MODE='development',
               SQLALCHEMY_DEFAULT='postgresql://nobody@127.0.0.1:1/none',
               CELERY_BROKER_URL='redis://127.0.0.1:1/0')
    out = subprocess.run([sys.executable, '-c', FROZEN], cwd=root, env=env,
                         capture_output=True, text=True, check=True).stdout
    tracked, left, frozen = map(int, out.split())
    assert frozen >= tracked > 10_000
    assert left < tracked / 100
