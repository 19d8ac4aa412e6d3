"""A bad request sent to the service app and its answer checked: no 5xx,
every error in the envelope, each answered within a second. The generated
requests are counted (GENERATED) for test_generated's last test."""
import io
import json
import os
import time
from collections import Counter
from unittest.mock import patch

from werkzeug.test import EnvironBuilder

from service import settings as service_settings
from tests.settings import DATABASE_URL, redis_url

BROKER_URL = redis_url(13)
MAX_SECONDS = 1.0
# An accepted user.create has had its password hashed by bcrypt (0.3 s, more on
# a busy machine): a valid request's cost, not a bad input's. The generated
# requests hold at most one valid user.create each; test_a_batch_of_valid_user_creates_is_slow.
HASHED_SECONDS = 3.0
DEFAULT_LIMIT = 1 << 20   # FLASK_MAX_CONTENT_LENGTH's default
SMALL_LIMIT = 1000
JSON = 'application/json'

# How many requests each generated test sent, by test name.
GENERATED = Counter()


def build_app(**overrides):
    """A service app on the test database and broker db 13: settings not
    given here are their defaults, whatever the environment says."""
    from web import create_app
    config = {'SQLALCHEMY_DEFAULT': DATABASE_URL, 'CELERY_BROKER_URL': BROKER_URL,
              'CELERY_PUBLISH_TIMEOUT': 1.0, 'FLASK_API_TOKENS': '', 'SERVICE_MODE': 'development',
              **overrides}
    with patch.dict(os.environ, {'FLASK_CONFIG_PREFIXES': 'SQLALCHEMY'}):
        for name in service_settings.SETTINGS:
            if name != 'FLASK_CONFIG_PREFIXES':
                os.environ.pop(name, None)
        app = create_app(config=config)
    # The first request opens the pools: not a bad input's doing, so not timed.
    assert app.test_client().get('/health').status_code == 200
    return app


def assert_sound(status, content_type, data, elapsed, describe, limit=MAX_SECONDS):
    """No 5xx, an error is the envelope with the status as its code, and the
    answer came within `limit` seconds. `describe()` names the request."""
    what = describe()
    what = what if len(what) < 400 else what[:400] + '...'
    assert status < 500, f'{what} -> {status}: {data[:500]!r}'
    assert elapsed < limit, f'{what} -> {status} in {elapsed:.2f} s'
    if status >= 400:
        assert content_type == JSON, f'{what} -> {status} as {content_type}: {data[:300]!r}'
        body = json.loads(data)
        assert isinstance(body, dict), f'{what} -> {body!r}'
        assert type(body.get('code')) is int and body['code'] == status, f'{what} -> {body!r}'
        assert isinstance(body.get('message'), str) and body['message'], f'{what} -> {body!r}'
        assert len(body.get('errors', [])) <= 20, f'{what} -> {len(body["errors"])} errors'
        for entry in body.get('errors', []):
            assert isinstance(entry['path'], str) and entry['path'].startswith('/'), body
            assert isinstance(entry['message'], str), body


def send(client, method, url, *, counter=None, **kwargs):
    """One request through the test client, checked by assert_sound."""
    start = time.monotonic()
    response = client.open(url, method=method, **kwargs)
    elapsed = time.monotonic() - start
    if counter:
        GENERATED[counter] += 1

    def describe():
        data = kwargs.get('data', b'')
        return (f'{method} {url[:200]} {kwargs.get("content_type")!r} {kwargs.get("headers")!r} '
                f'{data[:200] if isinstance(data, (bytes, str)) else data!r}')
    hashed = response.status_code == 202 and url.startswith('/jobs/user.create')
    assert_sound(response.status_code, response.mimetype, response.get_data(), elapsed, describe,
                 HASHED_SECONDS if hashed else MAX_SECONDS)
    return response


def post(client, url, data, content_type=JSON, **kwargs):
    return send(client, 'POST', url, data=data, content_type=content_type, **kwargs)


def post_streamed(client, url, data, content_type=JSON, counter=None):
    """POST without Content-Length, as a chunked body reaches the app from a
    server that terminates the stream itself (gunicorn)."""
    environ = EnvironBuilder(path=url, method='POST', input_stream=io.BytesIO(data),
                             content_type=content_type).get_environ()
    del environ['CONTENT_LENGTH']
    environ['wsgi.input_terminated'] = True
    start = time.monotonic()
    response = client.open(client.application.request_class(environ))
    if counter:
        GENERATED[counter] += 1
    assert_sound(response.status_code, response.mimetype, response.get_data(),
                 time.monotonic() - start, lambda: f'streamed POST {url} {data[:200]!r}')
    return response


def assert_status(response, *statuses):
    assert response.status_code in statuses, (response.status_code, response.get_data()[:300])
    return response
