"""No setting silently ignored: a variable with one of the service's own
prefixes (FLASK_, SQLALCHEMY_, CELERY_, WORKER_) must be something that is
read. A name no setting knows (a misspelling, an old Celery name) stops the
start in production mode, naming it and the closest known name; development
mode logs a warning. Prefixes of your own (the seed's AWS_, DB_) are not
checked: their variables are yours.

Also the variables read outside app.config (the Procfile, compose,
manage.py, a platform's URLs), so that the README's configuration tables
(`readme_tables`) list every one with its default and meaning.
"""
import difflib
import logging

from service import celery_settings, settings
from service.errors import ConfigError

SERVICE_PREFIXES = ('FLASK', 'SQLALCHEMY', 'CELERY', 'WORKER')
# Read by `flask` itself (its CLI), not by app.config.
FLASK_CLI = {'FLASK_APP', 'FLASK_DEBUG', 'FLASK_ENV', 'FLASK_SKIP_DOTENV'}
FLASK_CLI_PREFIX = 'FLASK_RUN_'

# name -> (default, meaning) of the variables read outside app.config.
OTHER_SETTINGS = {
    'SQLALCHEMY_DEFAULT': (
        '(required)', 'URL of the service database (`postgresql://user:password@host:port/name`); '
                      'unset: DATABASE_URL. Any `SQLALCHEMY_<NAME>=<url>` declares another database.'),
    'DATABASE_URL': (
        '(none)', "A platform's database URL, read when SQLALCHEMY_DEFAULT is not set "
                  '(`postgres://` is read as `postgresql://`).'),
    'REDIS_URL': (
        '(none)', "A platform's Redis URL, read when CELERY_BROKER_URL is not set."),
    'CELERY_<NAME>': (
        "Celery's", "Any Celery setting, by Celery's lowercase name upper-cased "
                    '(CELERY_TASK_TIME_LIMIT, CELERY_WORKER_MAX_TASKS_PER_CHILD, ...), typed as '
                    'Celery types it (dict, list: JSON). Refused at start-up: an override of '
                    'acks late, reject on worker lost, acks on failure, eager mode, ignore '
                    'result, JSON-only serializers and content, the jobs queue.'),
    'PG_ADMIN_URL': (
        'postgresql://postgres@127.0.0.1:5432/postgres',
        'The PostgreSQL admin role (with its password, if it has one) that `manage.py` uses '
        'to create the role and database it needs; `run` skips it when they exist already.'),
    'BIND_ADDRESS': ('127.0.0.1', 'Address web and Flower listen on (Procfile; compose: 0.0.0.0).'),
    'PORT': ('8000', 'Port of the web front.'),
    'FLOWER_PORT': ('5555', 'Port of Flower.'),
    'WEB_CONCURRENCY': ('1', "gunicorn's processes (gevent workers)."),
    'WEB_CONNECTIONS': ('1000', 'Requests in flight per web process.'),
    'WORKER_CONCURRENCY': ('2', 'Celery worker processes.'),
    'WORKER_QUEUES': ('jobs', 'Comma-separated Celery queues the worker serves (its -Q): '
                              'jobs, and the queues of the kinds routed to it.'),
    'WORKER_NAME': ('celery@%h', "The worker's node name (its --hostname; %h is the host's name): "
                                 'one of its own for each worker of a host, as Flower and '
                                 '`celery inspect` tell workers apart by it.'),
    'BEAT_SCHEDULE_FILE': ('/tmp/celerybeat-schedule', "Where beat keeps its schedule's state."),
}


class UnknownSettingError(ConfigError):
    """A variable of the service's prefixes that nothing reads."""


def known_names():
    """Every variable name the service reads."""
    return (set(settings.SETTINGS) | {n for n in OTHER_SETTINGS if '<' not in n}
            | celery_settings.names() | FLASK_CLI)


def _prefix(name):
    return name.split('_', 1)[0]


def _is_database(name, value):
    return name.startswith('SQLALCHEMY_') and isinstance(value, str) and '://' in value


def problems(environ, overrides=None):
    """One phrase per variable of `environ` (or name of `overrides`) with a
    service prefix that would be ignored; empty when every one is read."""
    overrides = overrides or {}
    known = known_names()
    configured = settings.prefixes(environ)
    extra_raw = overrides.get('FLASK_CONFIG_EXTRA_NAMES', environ.get('FLASK_CONFIG_EXTRA_NAMES', ''))
    extra = {n.strip().upper() for n in str(extra_raw).split(',') if n.strip()}
    found = []
    names = {n: environ[n] for n in environ if _prefix(n) in SERVICE_PREFIXES and '_' in n}
    names.update({n: v for n, v in overrides.items() if _prefix(n) in SERVICE_PREFIXES})
    for name in sorted(names):
        if name in settings.SETTINGS or name in OTHER_SETTINGS or name in FLASK_CLI \
                or name.startswith(FLASK_CLI_PREFIX):
            continue  # read whatever the prefixes
        if not (name in known or name in extra or _is_database(name, names[name])):
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            found.append(f'{name} is not a setting'
                         + (f' (did you mean {close[0]}?)' if close else ''))
        elif name not in overrides and _prefix(name) not in configured:
            found.append(f'{name} is not read: {_prefix(name)} is not in FLASK_CONFIG_PREFIXES')
    return found


def check(config, environ, overrides=None):
    """Raise UnknownSettingError naming every ignored variable in production
    mode; log a warning for each in development mode."""
    found = problems(environ, overrides)
    if not found:
        return
    if config.get('SERVICE_MODE') == 'production':
        raise UnknownSettingError(
            'refusing to start in production mode (SERVICE_MODE=production): '
            + '; '.join(found)
            + '. Correct the names, list variables of your own in FLASK_CONFIG_EXTRA_NAMES, '
              'or set SERVICE_MODE=development (a warning then).')
    for phrase in found:
        logging.getLogger('config').warning('setting ignored: %s', phrase)


def _cell(text):
    return str(text).replace('|', '\\|')


def readme_tables():
    """The README's configuration tables, in Markdown: every setting of the
    app (settings.SETTINGS), then the variables read outside app.config."""
    lines = ['| variable | default | meaning |', '|---|---|---|']
    for name, setting in settings.SETTINGS.items():
        default = '(none)' if setting.default == '' else f'`{setting.default}`'
        lines.append(f'| `{name}` | {_cell(default)} | {_cell(setting.doc)} |')
    lines += ['', '| variable | default | meaning |', '|---|---|---|']
    for name, (default, doc) in OTHER_SETTINGS.items():
        default = f'`{default}`' if not default.startswith('(') and default != "Celery's" else default
        lines.append(f'| `{name}` | {_cell(default)} | {_cell(doc)} |')
    return '\n'.join(lines) + '\n'


if __name__ == '__main__':  # python3 -m service.config_check: the tables to paste into the README
    print(readme_tables(), end='')
