"""Bearer tokens and their scopes: when FLASK_API_TOKENS is set, every request
but those of the open endpoints must carry one of its tokens (401), and the
token must have the scope its endpoint needs (403)."""
import hashlib
import hmac

from flask import current_app, g, request

from service.settings import SCOPES, token_scopes
from web.errors import ApiError

# The endpoints open without a token, with the path the API's description
# (web/openapi.py) marks open: the health check, the metrics, the kinds, and
# the description itself, which holds the kinds' schemas and says what needs
# a token.
OPEN_ENDPOINTS = {
    'system.health': '/health', 'metrics.metrics': '/metrics', 'jobs.list_kinds': '/kinds',
    'openapi.document': '/openapi.json', 'openapi.docs': '/docs',
    'openapi.docs_asset': None, 'openapi.docs_initializer': None,  # the page's own files
}
OPEN_PATHS = {path for path in OPEN_ENDPOINTS.values() if path}

# The scope each endpoint needs. An endpoint neither here nor open needs
# admin: a new route is closed until it is given its scope.
ENDPOINT_SCOPES = {
    'jobs.create_job': 'enqueue', 'jobs.create_batch': 'enqueue',
    'jobs.get_job': 'read', 'jobs.list_jobs': 'read',
    'jobs.retry_job': 'admin',
}
DEFAULT_SCOPE = 'admin'
assert set(ENDPOINT_SCOPES.values()) <= set(SCOPES)


def endpoint_scope(endpoint):
    """The scope `endpoint` needs, or None when it is open."""
    if endpoint in OPEN_ENDPOINTS:
        return None
    return ENDPOINT_SCOPES.get(endpoint, DEFAULT_SCOPE)


def bearer(configured, authorization):
    """(scopes, fingerprint) of the configured token an Authorization header
    value carries as a bearer token, or None."""
    scheme, _, given = authorization.partition(' ')
    given = given.strip().encode()
    # Compare with every token, so the time taken does not tell which one nearly matched.
    granted = frozenset()
    matched = False
    for token, scopes in configured:
        if hmac.compare_digest(given, token):
            matched, granted = True, scopes
    if scheme.lower() != 'bearer' or not matched:
        return None
    return granted, hashlib.sha256(given).hexdigest()[:32]


def require_token():
    """before_request hook: 401 unless the request carries a configured token,
    403 unless that token has the scope of the endpoint."""
    configured = current_app.extensions['api_tokens']
    # OPTIONS only tells the methods of a path, which the open document tells too.
    if not configured or request.endpoint in OPEN_ENDPOINTS or request.method == 'OPTIONS':
        return
    found = bearer(configured, request.headers.get('Authorization', ''))
    if found is None:
        raise ApiError(401, 'a valid bearer token is required',
                       headers={'WWW-Authenticate': 'Bearer'})
    granted, g.api_token_fingerprint = found
    # A route that does not exist (no endpoint) is a 404 or 405 for any token.
    needed = endpoint_scope(request.endpoint) if request.endpoint else None
    if needed is not None and needed not in granted:
        raise ApiError(403, f'this token lacks the {needed} scope',
                       headers={'WWW-Authenticate': f'Bearer error="insufficient_scope", '
                                                    f'scope="{needed}"'})


def init_auth(app):
    app.extensions['api_tokens'] = [(token.encode(), scopes)
                                    for token, scopes in token_scopes(app.config).items()]
    app.before_request(require_token)
