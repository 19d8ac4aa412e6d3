"""Every Celery setting as CELERY_<NAME> (Celery's own lowercase name,
upper-cased), typed by Celery's own table (celery.app.defaults), and the
service's exactly-once choices that an override may not undo.

Environment values are strings: bool, int and float settings are parsed as
Celery parses them; dict, list, tuple and free-form ("any") settings take
JSON (a list or tuple also a comma-separated string; an "any" value that is
not JSON stays a string, e.g. a dotted router path).
"""
import json

from celery.app.defaults import NAMESPACES, flatten
from celery.utils.serialization import strtobool

from service.errors import ConfigError

PREFIX = 'CELERY_'
OPTIONS = dict(flatten(NAMESPACES))  # lowercase name -> celery Option

# Transport options the service sets from its own settings.
OWN_TRANSPORT_OPTIONS = {'visibility_timeout': 'CELERY_VISIBILITY_TIMEOUT',
                         'socket_connect_timeout': 'CELERY_PUBLISH_TIMEOUT',
                         'socket_timeout': 'CELERY_PUBLISH_TIMEOUT'}

JSON_CONTENT = {'json', 'application/json'}


class UnsafeCeleryConfigError(ConfigError):
    """A Celery setting overridden against the service's guarantees."""


def env_name(name):
    return PREFIX + name.upper()


def names():
    """Every CELERY_<NAME> that reaches Celery."""
    return {env_name(name) for name in OPTIONS}


def _sequence(raw):
    text = raw.strip()
    if text.startswith('['):
        return json.loads(text)
    return [part.strip() for part in text.split(',') if part.strip()]


def _any(raw):
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _dict(raw):
    value = json.loads(raw)
    if value is not None and not isinstance(value, dict):
        raise ValueError('it is a JSON object')
    return value


PARSERS = {'bool': strtobool, 'int': int, int: int, 'float': float, 'string': str, 'str': str,
           'bytes': str.encode, 'dict': _dict, 'list': _sequence,
           'tuple': lambda raw: tuple(_sequence(raw)), 'any': _any}


def parse(name, value):
    """The value of Celery setting `name` (lowercase) as Celery types it;
    values already typed (a test's overrides) pass as they are."""
    if not isinstance(value, str):
        return value
    option = OPTIONS[name]
    if option.default is None and value.strip().lower() in ('', 'none', 'null'):
        return None
    try:
        return PARSERS[option.type](value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f'setting {env_name(name)} is invalid: {error or "not a " + str(option.type)}') from None


def overrides(config):
    """Celery settings given in `config` as CELERY_<NAME>, parsed, by Celery name."""
    found = {}
    for name in OPTIONS:
        key = env_name(name)
        if key in config:
            found[name] = parse(name, config[key])
    return found


def _json_only(value):
    if isinstance(value, str):
        value = [value]
    return value is not None and bool(value) and all(v in JSON_CONTENT for v in value)


# The service's choices Celery must keep: name -> (is it safe?, why).
GUARDED = {
    'task_acks_late': (lambda v: v is True,
                       'true: a message is acked after its job is applied, so a lost worker loses nothing'),
    'task_reject_on_worker_lost': (lambda v: v is True,
                                   'true: the jobs of a worker killed mid-run are handed back'),
    'task_acks_on_failure_or_timeout': (lambda v: v is True,
                                        'true: the ledger records a failed job; the message is done'),
    'task_always_eager': (lambda v: v is False,
                          'false: jobs run in the workers, never inside a web request'),
    'task_ignore_result': (lambda v: v is True,
                           'true: the job ledger holds the results'),
    'task_serializer': (lambda v: v == 'json', "'json': only JSON is (de)serialized"),
    'result_serializer': (lambda v: v == 'json', "'json': only JSON is (de)serialized"),
    'event_serializer': (lambda v: v == 'json', "'json': only JSON is (de)serialized"),
    'accept_content': (_json_only, "['json']: a pickled message is refused"),
    'result_accept_content': (lambda v: v is None or _json_only(v),
                              "unset or ['json']: a pickled result is refused"),
    'task_default_queue': (lambda v: v == 'jobs',
                           "'jobs': the sweep and /metrics read that queue"),
}


def check_safe(conf):
    """Raise UnsafeCeleryConfigError naming each Celery setting of `conf` (by
    its CELERY_ name) that undoes an exactly-once or JSON-only choice."""
    found = [f'{env_name(name)} must stay {why}'
             for name, (safe, why) in GUARDED.items() if name in conf and not safe(conf[name])]
    annotations = conf.get('task_annotations')
    for annotation in (annotations if isinstance(annotations, (list, tuple)) else [annotations]):
        if isinstance(annotation, dict):
            for task, options in annotation.items():
                for option in sorted(set(options or ()) & {'acks_late', 'reject_on_worker_lost',
                                                           'ignore_result', 'serializer'}):
                    found.append(f'CELERY_TASK_ANNOTATIONS may not set {option} (task {task})')
    transport = conf.get('broker_transport_options') or {}
    for option, setting in OWN_TRANSPORT_OPTIONS.items():
        if option in transport:
            found.append(f'CELERY_BROKER_TRANSPORT_OPTIONS may not set {option}: use {setting}')
    if found:
        raise UnsafeCeleryConfigError(
            'refusing to start: a Celery setting would undo the exactly-once delivery of jobs: '
            + '; '.join(found) + '.')
