"""Bearer-token authentication: when FLASK_API_TOKENS is set, every request
but those of the open endpoints must carry one of its tokens."""
import hashlib
import hmac

from flask import current_app, g, request

from service.settings import api_tokens
from web.errors import ApiError

# The endpoints open without a token, with the path the API's description
# (web/openapi.py) marks open: the health check, the metrics, and the
# description itself, which says what needs a token.
OPEN_ENDPOINTS = {
    'system.health': '/health', 'metrics.metrics': '/metrics',
    'openapi.document': '/openapi.json', 'openapi.docs': '/docs',
    'openapi.docs_asset': None, 'openapi.docs_initializer': None,  # the page's own files
}
OPEN_PATHS = {path for path in OPEN_ENDPOINTS.values() if path}


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
    app.extensions['api_tokens'] = api_tokens(app.config)
    app.before_request(require_token)
