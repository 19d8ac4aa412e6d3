"""Bearer-token authentication: when FLASK_API_TOKENS is set, every request
but the health check and the API's description must carry one of its tokens."""
import hashlib
import hmac

from flask import current_app, g, request

from web import security
from web.errors import ApiError

# The health check, the metrics, and the API's description (web/openapi.py), which says what needs a token.
OPEN_ENDPOINTS = {'system.health', 'openapi.document', 'openapi.docs', 'openapi.docs_asset',
                  'openapi.docs_initializer', 'metrics.metrics'}


def tokens(config):
    return [t.strip() for t in config.get('FLASK_API_TOKENS', '').split(',') if t.strip()]


def require_token():
    """before_request hook: 401 unless the request carries a configured token."""
    configured = current_app.extensions['api_tokens']
    if not configured or request.endpoint in OPEN_ENDPOINTS:
        return
    scheme, _, given = request.headers.get('Authorization', '').partition(' ')
    given = given.strip().encode()
    # Compare with every token, so the time taken does not tell which one nearly matched.
    matched = [hmac.compare_digest(given, t.encode()) for t in configured]
    if scheme.lower() != 'bearer' or not any(matched):
        raise ApiError(401, 'a valid bearer token is required',
                       headers={'WWW-Authenticate': 'Bearer'})
    g.api_token_fingerprint = hashlib.sha256(given).hexdigest()[:32]


def init_auth(app):
    # At create_app time, so every process (web, worker, beat, Flower) refuses an unsafe production config.
    security.check(app.config)
    app.extensions['api_tokens'] = tokens(app.config)
    app.before_request(require_token)
