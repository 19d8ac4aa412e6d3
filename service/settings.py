"""Every setting of the service, with its default, in one place.

Values come from, in order: an explicit mapping (tests), the environment,
the default here. `service.build_app` loads them into `app.config`; the worker and
Flower read the same config, so nothing else reads `os.environ`.
"""
import json
import os
from typing import Any, Callable, NamedTuple

from service.errors import ConfigError


def _bool(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ('1', 'true', 'yes', 'on')


MODES = ('development', 'production')
LOG_FORMATS = ('json', 'text')


def _mode(value):
    mode = str(value).strip().lower()
    if mode not in MODES:
        raise ValueError(f'it is one of {", ".join(MODES)}')
    return mode


def _log_format(value):
    log_format = str(value).strip().lower()
    if log_format not in LOG_FORMATS:
        raise ValueError(f'it is one of {", ".join(LOG_FORMATS)}')
    return log_format


# What a token may do (FLASK_API_TOKENS): enqueue jobs, read them, and the
# admin actions (retry, cancel, bulk actions). A token listed alone has them all.
SCOPES = ('enqueue', 'read', 'admin')


def _token_entries(value):
    """(token, scopes) of each entry of FLASK_API_TOKENS. Raises ValueError
    naming the entry by its position, never its token."""
    entries = []
    for index, entry in enumerate(split_list(value), 1):
        token, colon, named = entry.partition(':')
        scopes = set(SCOPES)
        if colon:
            scopes = {s.strip() for s in named.split('+') if s.strip()}
            unknown = scopes - set(SCOPES)
            if unknown or not scopes:
                raise ValueError(f'token {index} has scopes that are not '
                                 f'{", ".join(SCOPES)} (joined by +)')
        entries.append((token.strip(), frozenset(scopes)))
    return entries


def _tokens(value):
    _token_entries(value)
    return '' if value is None else str(value)


def _rate_limit(value):
    """A rate limit in the notation of the `limits` library ('' for none)."""
    from limits import parse_many
    text = str(value or '').strip()
    if text:
        parse_many(text)  # ValueError names what it could not read
    return text


def _json_object(value):
    if isinstance(value, dict):
        return value
    if not str(value).strip():
        return {}
    try:
        parsed = json.loads(value)
    except ValueError as error:
        raise ValueError(f'it is not JSON: {error}') from None
    if not isinstance(parsed, dict):
        raise ValueError('it is a JSON object')
    return parsed


class Setting(NamedTuple):
    default: Any
    parse: Callable
    doc: str


SETTINGS = {
    'SERVICE_MODE': Setting(
        'production', _mode,
        'development or production. Production (the default) refuses to start without API '
        'tokens or with a missing, short or example secret; development allows an open API.'),
    'FLASK_SECRET_KEY': Setting(
        '', str, "Flask's SECRET_KEY; production needs 32+ characters, not the example's."),
    'FLASK_CONFIG_PREFIXES': Setting(
        'FLASK,SQLALCHEMY,CELERY', str,
        'Comma-separated prefixes of the environment variables loaded into app.config.'),
    'FLASK_CONFIG_EXTRA_NAMES': Setting(
        '', str, 'Comma-separated variables of your own with a prefix of the service '
                 '(FLASK_, SQLALCHEMY_, CELERY_, WORKER_) that no setting knows: loaded into '
                 'app.config without the unknown-name check (service/config_check.py).'),
    'FLASK_MAX_CONTENT_LENGTH': Setting(
        1 << 20, int, 'Largest request body accepted, in bytes (larger: 413).'),
    'FLASK_API_TOKENS': Setting(
        '', _tokens, 'Comma-separated bearer tokens, each `token` (every scope) or '
                     '`token:scope+scope` (scopes: enqueue, read, admin); when set, every request '
                     'needs one but /health, /metrics, /kinds, /openapi.json and /docs, and a token '
                     'without the scope an endpoint needs is refused (403). Production: required, '
                     '16+ characters each.'),
    'FLASK_RATE_LIMIT_ENQUEUE': Setting(
        '1000/second', _rate_limit, 'Requests a token may make to the enqueue endpoints (POST '
                                    '/jobs/<kind>, /batch), together, e.g. `1000/second` or '
                                    '`100/second;5000/minute`; empty: no limit (429 past it).'),
    'FLASK_RATE_LIMIT_READ': Setting(
        '100/second', _rate_limit, 'Requests a token may make to the read endpoints (GET /jobs, '
                                   '/jobs/<id>); empty: no limit.'),
    'FLASK_RATE_LIMIT_ADMIN': Setting(
        '10/second', _rate_limit, 'Requests a token may make to the admin endpoints (retry); '
                                  'empty: no limit.'),
    'FLASK_RATE_LIMIT_STORAGE_URL': Setting(
        '', str, 'The Redis where the rate limits are counted, shared by every web process '
                 '(empty: the broker, CELERY_BROKER_URL, when it is a Redis; with RabbitMQ, '
                 'each web process counts alone).'),
    'FLASK_BATCH_LIMIT': Setting(
        1000, int, 'Most jobs one POST /jobs/<kind>/batch may carry.'),
    'FLASK_IDEMPOTENCY_WINDOW_SECONDS': Setting(
        86400.0, float, 'How long an Idempotency-Key is honoured (from its job\'s acceptance); '
                        'after it, the same key makes a new job.'),
    # 10 ms: the most a group waits; within it, a group waits as long as the
    # process takes to serve its clients' requests (web/group_commit.py), 2 ms
    # at least. On a slow machine, 2 ms for all cut the groups short: 5-23%
    # more CPU a job, the p99s at half the peak higher (bench, 2026-12-07).
    'FLASK_GROUP_COMMIT_MS': Setting(
        10.0, float, 'Longest a single-job POST waits for the requests in flight to share its '
                     'INSERT, COMMIT and message (within it, as long as the web process takes to '
                     'serve the requests it expects, 2 ms at least).'),
    'SQLALCHEMY_POOL_SIZE': Setting(
        5, int, 'Database connections each process keeps open per database.'),
    'SQLALCHEMY_MAX_OVERFLOW': Setting(
        5, int, 'Extra connections a process may open under load, per database.'),
    'SQLALCHEMY_POOL_PRE_PING': Setting(
        True, _bool, 'Test a pooled connection before use, so a database restart costs no request.'),
    'SQLALCHEMY_LOCK_TIMEOUT_MS': Setting(
        5000, int, 'Longest wait for a row lock before the statement fails (55P03, retried).'),
    'SQLALCHEMY_PGBOUNCER': Setting(
        False, _bool, 'The databases are reached through PgBouncer in transaction pooling mode: '
                      'no startup options, no prepared statements; plan_cache_mode and lock_timeout '
                      'are set in each transaction (set_config(..., true)).'),
    'CELERY_BROKER_URL': Setting(
        'redis://127.0.0.1:6379/0', str, 'The broker that carries the job messages: Redis '
                                         '(redis://) or RabbitMQ (amqp://, quorum queue, publisher '
                                         'confirms) (unset: REDIS_URL, then the default).'),
    'CELERY_VISIBILITY_TIMEOUT': Setting(
        300, int, 'Seconds before Redis redelivers a message fetched but not acked (Redis only: '
                 'RabbitMQ redelivers when the worker\'s connection closes).'),
    'CELERY_PREFETCH_MULTIPLIER': Setting(
        8, int, 'Messages each worker process reserves ahead; jobs are short '
                '(Celery\'s own CELERY_WORKER_PREFETCH_MULTIPLIER wins when given).'),
    'CELERY_PUBLISH_TIMEOUT': Setting(
        2.0, float, 'Seconds the web waits for the broker (RabbitMQ: its publish confirm) '
                 'before answering 503.'),
    'WORKER_BATCH_SIZE': Setting(
        500, int, 'Jobs of one batch request (or sweep) sent as one message, applied in one transaction.'),
    'WORKER_MAX_ATTEMPTS': Setting(
        5, int, 'Tries of a job that meets transient errors before it is failed.'),
    'WORKER_RETRY_BASE_SECONDS': Setting(
        0.5, float, 'First retry delay; it doubles each attempt, jittered, up to the cap.'),
    'WORKER_RETRY_MAX_SECONDS': Setting(
        30.0, float, 'Cap of the retry delay (below CELERY_VISIBILITY_TIMEOUT).'),
    'WORKER_SWEEP_AGE_SECONDS': Setting(
        5.0, float, 'A job queued this long whose message is nowhere (not held by a worker, '
                     'older than the oldest message waiting) is published again by the sweep.'),
    'WORKER_STALE_RUNNING_SECONDS': Setting(
        60.0, float, 'A job running this long without its row lock held is run again, whoever '
                     'claimed it (WORKER_LOST_SECONDS finds a dead worker\'s jobs sooner).'),
    'WORKER_LOST_SECONDS': Setting(
        5.0, float, 'A worker not heard of for this long is dead: the messages it fetched are '
                    'handed to another, and the jobs it claimed are run again (its advisory '
                    'lock gone). Workers refresh their hold every second.'),
    'WORKER_SWEEP_EVERY_SECONDS': Setting(
        2.0, float, 'How often beat runs the recovery sweep (in its own process, never behind '
                    'the backlog).'),
    'WORKER_RETAIN_SUCCEEDED_SECONDS': Setting(
        7 * 86400.0, float, 'Succeeded jobs are deleted from the ledger this long after they '
                            'finished (0: never).'),
    'WORKER_RETAIN_FAILED_SECONDS': Setting(
        30 * 86400.0, float, 'Failed jobs are deleted from the ledger this long after they '
                             'finished (0: never).'),
    'WORKER_RETAIN_CANCELLED_SECONDS': Setting(
        7 * 86400.0, float, 'Cancelled jobs are deleted from the ledger this long after they '
                            'were cancelled (0: never).'),
    'WORKER_PRUNE_EVERY_SECONDS': Setting(
        10.0, float, 'How often beat deletes expired jobs (each run at most 2 s, in batches).'),
    'WORKER_PRUNE_BATCH': Setting(
        1000, int, 'Jobs deleted per transaction by the pruning (its row locks last that long).'),
    'WORKER_DUE_EVERY_SECONDS': Setting(
        0.25, float, "How often beat's due pass queues the scheduled jobs whose time has come "
                    '(and enqueues the periodic jobs whose slot has come).'),
    'WORKER_KIND_MODULES': Setting(
        '', str, 'Comma-separated modules of your own declaring job kinds (@kind), imported by '
                 'every process after the tasks package.'),
    'WORKER_PERIODIC_JOBS': Setting(
        '', _json_object, 'Periodic jobs, a JSON object: {"<name>": {"kind": ..., "payload": '
                          '{...}, "cron": "<5 fields, or 6 with seconds last>"}}, in UTC; each '
                          'slot is enqueued once (however many beats run); of the slots missed '
                          'while beat was down, only the latest runs.'),
    'LOG_FORMAT': Setting(
        'json', _log_format, 'json (one JSON object a line) or text: how web, worker, beat and '
                             'Flower write their logs.'),
    'FLOWER_BASIC_AUTH': Setting(
        '', str, '`user:password` for Flower (read by Flower itself); production needs a '
                 'password of 12+ characters, not the example\'s.'),
}


def split_list(value):
    """A comma-separated setting's items, stripped, empty ones left out."""
    return [item.strip() for item in (value or '').split(',') if item.strip()]


def api_tokens(config):
    """The bearer tokens of FLASK_API_TOKENS (empty: the API is open)."""
    return [token for token, _ in _token_entries(config.get('FLASK_API_TOKENS'))]


def token_scopes(config):
    """{token: frozenset of its scopes} of FLASK_API_TOKENS."""
    scopes = {}
    for token, granted in _token_entries(config.get('FLASK_API_TOKENS')):
        scopes[token] = scopes.get(token, frozenset()) | granted
    return scopes


def prefixes(environ):
    """The configured prefixes; FLASK is always one of them."""
    raw = environ.get('FLASK_CONFIG_PREFIXES', SETTINGS['FLASK_CONFIG_PREFIXES'].default)
    return {p.upper() for p in split_list(raw)} | {'FLASK'}


def _postgresql(url):
    # Platforms give postgres://, a scheme SQLAlchemy no longer reads.
    return 'postgresql://' + url[len('postgres://'):] if url.startswith('postgres://') else url


def platform_urls(environ):
    """A deployment platform's DATABASE_URL and REDIS_URL, as SQLALCHEMY_DEFAULT
    and CELERY_BROKER_URL when those are not set."""
    found = {}
    if environ.get('DATABASE_URL') and not environ.get('SQLALCHEMY_DEFAULT'):
        found['SQLALCHEMY_DEFAULT'] = _postgresql(environ['DATABASE_URL'])
    if environ.get('REDIS_URL') and not environ.get('CELERY_BROKER_URL'):
        found['CELERY_BROKER_URL'] = environ['REDIS_URL']
    return found


def load(environ=None, overrides=None):
    """Return the configuration: every prefixed environment variable under
    its full name, then every known setting (read from the environment
    whatever the prefixes) parsed to its type."""
    environ = os.environ if environ is None else environ
    overrides = {**platform_urls(environ), **dict(overrides or {})}
    wanted = tuple(p + '_' for p in prefixes(environ))
    config = {k: v for k, v in environ.items() if k.startswith(wanted)}
    config.update(overrides)
    for name, setting in SETTINGS.items():
        raw = config.get(name, environ.get(name, setting.default))
        try:
            config[name] = setting.parse(raw)
        except (TypeError, ValueError) as error:
            raise ConfigError(f'setting {name} is invalid: {error}') from None
    return config
