"""Rate limits per token and scope (FLASK_RATE_LIMIT_<SCOPE>), counted by
flask-limiter in Redis, so every web process and host shares the counts.

A token's requests to the endpoints of one scope share one count (fixed
windows); past it the answer is 429 in the envelope with `Retry-After` (and
seconds until the window ends). Open endpoints and an
open API (no tokens configured: nobody to count for) are not limited: with no
limit to keep, flask-limiter is not installed at all (its hooks cost a sixth
of a request's CPU, counting nothing). The hot paths in front of Flask
(web/fast_paths.py) count their requests in the same counts (admitted()). If the
counting Redis is unreachable, requests are let through (logged): the
enqueue then meets the broker's own 503."""
import math
import time

from flask import g, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import parse_many

from service import brokers
from web.auth import ENDPOINT_SCOPES
from web.errors import envelope

EXTENSION = 'rate_limits'
# {scope: [limits.RateLimitItem]}: each limited scope's limits, for admitted().
SCOPE_LIMITS = 'rate_limits_of_scopes'
COUNTED = 'web.rate_limits.counted'  # environ: counted in front of Flask (web/fast_paths.py)
KEY_PREFIX = 'ratelimit'


def _token_key():
    return g.api_token_fingerprint


def _exempt():
    # No token was checked (an open API): nothing to count per. Or the hot
    # path counted the request already, before handing it to Flask.
    return g.get('api_token_fingerprint') is None or request.environ.get(COUNTED, False)


def _storage(config):
    """Where the web processes count: FLASK_RATE_LIMIT_STORAGE_URL, else the
    broker when it is a Redis, else each process's memory (a RabbitMQ broker
    keeps no counters: set FLASK_RATE_LIMIT_STORAGE_URL to a Redis for limits
    shared by every web process)."""
    broker = config['CELERY_BROKER_URL']
    return (config.get('FLASK_RATE_LIMIT_STORAGE_URL')
            or (broker if brokers.kind(broker) == brokers.REDIS else 'memory://'))


def init_rate_limits(app):
    """Limit the endpoints of each scope; run after auth's before_request
    (the key is the token auth found) and after the routes are registered.
    Returns the Limiter, or None when there is nothing to limit."""
    limits = {endpoint: app.config[f'FLASK_RATE_LIMIT_{scope.upper()}']
              for endpoint, scope in ENDPOINT_SCOPES.items() if endpoint in app.view_functions}
    if not app.extensions['api_tokens'] or not any(limits.values()):
        return None
    limiter = Limiter(
        key_func=_token_key, app=app, storage_uri=_storage(app.config),
        storage_options={'socket_connect_timeout': 1, 'socket_timeout': 1},
        strategy='fixed-window', headers_enabled=False, swallow_errors=True,
        key_prefix=KEY_PREFIX)
    for endpoint, limit in limits.items():
        if limit:
            scope = ENDPOINT_SCOPES[endpoint]
            shared = limiter.shared_limit(limit, scope=scope, exempt_when=_exempt)
            app.view_functions[endpoint] = shared(app.view_functions[endpoint])
    app.extensions[EXTENSION] = limiter
    app.extensions[SCOPE_LIMITS] = {ENDPOINT_SCOPES[endpoint]: sorted(parse_many(limit))
                                    for endpoint, limit in limits.items() if limit}

    @app.errorhandler(RateLimitExceeded)
    def too_many(error):
        breached = limiter.current_limit
        wait = math.ceil(breached.reset_at - time.time()) if breached else 1
        scope = getattr(error.limit, 'scope', 'these')
        return envelope(429, f'too many {scope} requests for this token ({error.description}): '
                             'try again after Retry-After seconds',
                        headers={'Retry-After': str(max(wait, 1))})
    return limiter


class OverLimit(Exception):
    """A hot-path request past its token's limit: Flask's limiter answers it."""


def admitted(app, quotas):
    """Count requests outside Flask's request (web/fast_paths.py), each
    `quota` a (token fingerprint, scope), or None for a request not to count,
    in the counts flask-limiter keeps for the scopes' endpoints: the same
    storage, keys and limits. Returns, for each, whether it is within every
    limit of its scope. The requests of one token and scope are counted
    together, one increment of each limit's count by their number (a round
    trip each, where flask-limiter makes one a request), and the first ones
    to fit are admitted. A request not admitted (past a limit, or the count
    failed) is flask-limiter's to count and answer, as any other. Unlike
    flask-limiter's, which stops at the first limit a request breaks, the
    count raises every limit of the scope, the requests past one included."""
    limits = app.extensions.get(SCOPE_LIMITS, {})
    together = {}
    for index, quota in enumerate(quotas):
        if quota is not None and limits.get(quota[1]):
            together.setdefault(quota, []).append(index)
    answers = [True] * len(quotas)
    for (fingerprint, scope), indexes in together.items():
        fit = _fit(app, limits[scope], fingerprint, scope, len(indexes))
        for index in indexes[fit:]:
            answers[index] = False
    return answers


def _fit(app, items, fingerprint, scope, count):
    """How many of `count` requests fit in every limit of `items`, their
    counts raised by all of them (0 if the storage failed)."""
    storage = app.extensions[EXTENSION].storage
    fit = count
    try:
        for item in items:
            # What limits' fixed window counts in each hit, for `count` at once.
            total = storage.incr(item.key_for(KEY_PREFIX, fingerprint, scope),
                                 item.get_expiry(), amount=count)
            fit = min(fit, max(0, item.amount - (total - count)))
    except Exception:  # noqa: BLE001 - flask-limiter logs the storage's failure and lets it by
        return 0
    return fit
