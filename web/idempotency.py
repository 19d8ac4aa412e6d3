"""Idempotency-Key: a client may send the same request again (after a timeout,
say) and get the original job back instead of a second one."""
import hashlib
import hmac
import json
import re

from flask import current_app, g, request

from web.errors import ApiError

HEADER = 'Idempotency-Key'
VALID_KEY = re.compile(r'[\x20-\x7e]{1,255}')
ITEM_SEPARATOR = '\x1f'  # cannot occur in a client's key


def request_keys(count=None):
    """The request's key (a list of one), or one derived key per batch item;
    None without the header. 400 for a key that is not 1-255 printable characters."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not VALID_KEY.fullmatch(key):
        raise ApiError(400, f'{HEADER} must be 1 to 255 printable ASCII characters')
    if count is None:
        return [key]
    return [f'{key}{ITEM_SEPARATOR}{i}' for i in range(count)]


def scope():
    """Keys are scoped per API token: the token's fingerprint, or '' when open."""
    return g.get('api_token_fingerprint', '')


def digest(kind, payload):
    """A fingerprint of the request body: same kind and same JSON, same digest.
    Keyed with FLASK_SECRET_KEY: the body may hold a clear password (user.create),
    which a plain hash in the ledger would expose to a dictionary attack."""
    canonical = json.dumps([kind, payload], sort_keys=True, separators=(',', ':'))
    key = (current_app.config.get('FLASK_SECRET_KEY') or 'development').encode()
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()
