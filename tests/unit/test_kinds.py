"""A new job kind is one module in tasks/: nothing else to edit."""
import textwrap

import pytest

import tasks
from tasks.kinds import REGISTRY, KindDefinitionError, kind
from tests.settings import DATABASE_URL
from worker.execution import backoff

NEW_KIND = '''
from tasks.kinds import kind

@kind('probe.ping', schema={
    'type': 'object',
    'properties': {'n': {'type': 'integer'}},
    'required': ['n'],
    'additionalProperties': False,
})
def ping(payload):
    """Answer with the number."""
    return {'n': payload['n']}
'''


@pytest.fixture
def extra_kind_module(tmp_path, monkeypatch):
    (tmp_path / 'probe.py').write_text(textwrap.dedent(NEW_KIND))
    monkeypatch.setattr(tasks, '__path__', [*tasks.__path__, str(tmp_path)])
    yield
    REGISTRY.pop('probe.ping', None)


def test_a_module_in_tasks_adds_a_kind_to_the_api_and_the_worker(extra_kind_module, monkeypatch):
    monkeypatch.setenv('SQLALCHEMY_DEFAULT', DATABASE_URL)
    from service import create_app as create_service_app
    from web import create_app
    from worker import init_tasks
    assert 'probe.ping' in init_tasks(create_service_app()).tasks
    client = create_app().test_client()
    listed = {k['name']: k for k in client.get('/kinds').json['kinds']}
    assert listed['probe.ping']['description'] == 'Answer with the number.'
    refused = client.post('/jobs/probe.ping', json={'n': 'one'})
    assert refused.status_code == 400 and refused.json['errors'][0]['path'] == '/n'


def test_a_kind_must_refuse_unknown_fields():
    with pytest.raises(KindDefinitionError, match='unknown fields'):
        kind('loose.kind', schema={'type': 'object'})


def test_a_kind_name_is_registered_once():
    tasks.load_all()

    def other(payload):
        return {}
    with pytest.raises(KindDefinitionError, match='twice'):
        kind('genre.create', schema={'type': 'object', 'additionalProperties': False})(other)


def test_backoff_grows_is_capped_and_jittered():
    config = {'WORKER_RETRY_BASE_SECONDS': 0.5, 'WORKER_RETRY_MAX_SECONDS': 30.0,
              'CELERY_BROKER_URL': 'redis://h:6379/0'}
    first = [backoff(1, config) for _ in range(50)]
    assert all(0.25 <= d <= 0.5 for d in first) and len(set(first)) > 1
    assert all(4 <= backoff(5, config) <= 8 for _ in range(20))
    assert all(15 <= backoff(20, config) <= 30 for _ in range(20))
    # RabbitMQ's delayed delivery keeps whole seconds, at least one.
    rabbit = {**config, 'CELERY_BROKER_URL': 'amqp://u:p@h:5672/v'}
    assert {backoff(1, rabbit) for _ in range(20)} == {1}
    assert all(backoff(5, rabbit) in range(4, 9) for _ in range(20))
