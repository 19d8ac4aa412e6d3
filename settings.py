"""Every setting of the service, with its default, in one place.

Values come from, in order: an explicit mapping (tests), the environment,
the default here. `app.py` loads them into `app.config`; the worker and
Flower read the same config, so nothing else reads `os.environ`.
"""
import os
from typing import Any, Callable, NamedTuple


def _bool(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ('1', 'true', 'yes', 'on')


class Setting(NamedTuple):
    default: Any
    parse: Callable
    doc: str


SETTINGS = {
    'FLASK_CONFIG_PREFIXES': Setting(
        'FLASK', str, 'Comma-separated prefixes of the environment variables loaded into app.config.'),
    'FLASK_MAX_CONTENT_LENGTH': Setting(
        1 << 20, int, 'Largest request body accepted, in bytes (larger: 413).'),
    'SQLALCHEMY_POOL_SIZE': Setting(
        5, int, 'Database connections each process keeps open per database.'),
    'SQLALCHEMY_MAX_OVERFLOW': Setting(
        5, int, 'Extra connections a process may open under load, per database.'),
    'SQLALCHEMY_POOL_PRE_PING': Setting(
        True, _bool, 'Test a pooled connection before use, so a database restart costs no request.'),
}


def prefixes(environ):
    """The configured prefixes; FLASK is always one of them."""
    raw = environ.get('FLASK_CONFIG_PREFIXES', SETTINGS['FLASK_CONFIG_PREFIXES'].default)
    found = {p.strip().upper() for p in raw.split(',') if p.strip()}
    return found | {'FLASK'}


def load(environ=None, overrides=None):
    """Return the configuration: every prefixed environment variable under
    its full name, then every known setting parsed to its type."""
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    wanted = tuple(p + '_' for p in prefixes(environ))
    config = {k: v for k, v in environ.items() if k.startswith(wanted)}
    config.update(overrides)
    for name, setting in SETTINGS.items():
        raw = config.get(name, setting.default)
        try:
            config[name] = setting.parse(raw)
        except (TypeError, ValueError) as error:
            raise ValueError(f'setting {name} is invalid: {error}') from None
    return config
