"""A few hand cases again over HTTP, against the web process (gunicorn, from
the Procfile): gunicorn reads the request before the app does."""
import json
import os
import sys
import time

import pytest
import requests

from cli.processes import Process
from service import settings as service_settings
from tests.e2e.service import free_port
from tests.integration.bad_input.checks import BROKER_URL, DEFAULT_LIMIT, JSON, assert_sound
from tests.integration.bad_input.json_text import CREDIT, GENRE, deep, sized, with_raw
from tests.settings import DATABASE_URL


@pytest.fixture(scope='module')
def web(broker, tmp_path_factory):
    """The web process alone (gunicorn, the Procfile's command) on the test
    database and broker db 13, with the default body limit; no worker."""
    env = {k: v for k, v in os.environ.items() if k not in service_settings.SETTINGS}
    env.update({
        'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', ''),
        'FLASK_CONFIG_PREFIXES': 'FLASK,SQLALCHEMY,CELERY',
        'SQLALCHEMY_DEFAULT': DATABASE_URL, 'CELERY_BROKER_URL': BROKER_URL,
        'PORT': str(free_port()), 'WEB_CONCURRENCY': '1', 'SERVICE_MODE': 'development',
    })
    process = Process('web', env, str(tmp_path_factory.mktemp('web-logs')))
    url = f'http://127.0.0.1:{env["PORT"]}'
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + '/health', timeout=2).status_code == 200:
                    break
            except requests.RequestException:  # not up yet, or slow on its first request
                pass
            assert time.monotonic() < deadline, process.log()
            time.sleep(0.2)
        yield url
    finally:
        process.stop()


def _chunks(data, size=64 * 1024):
    for start in range(0, len(data), size):
        yield data[start:start + size]


HTTP_CASES = {   # name: (path, body, content type, chunked, expected status)
    'over-the-limit': ('genre.create', sized(DEFAULT_LIMIT + 1), JSON, False, 413),
    'over-the-limit-chunked': ('genre.create', sized(DEFAULT_LIMIT + 1), JSON, True, 413),
    'far-over-the-limit': ('genre.create', b'{' + b' ' * (16 * DEFAULT_LIMIT), JSON, False, 413),
    'at-the-limit-chunked': ('genre.create', sized(DEFAULT_LIMIT), JSON, True, 400),
    'invalid-utf8': ('genre.create', b'{"name": "\xff", "description": "x"}', JSON, False, 400),
    'surrogate-utf8': ('genre.create', b'{"name": "\xed\xa0\x80", "description": "x"}', JSON,
                       False, 400),
    'nested-10000': ('genre.create', deep(10_000).encode(), JSON, False, 400),
    'nested-10000-in-a-field': ('genre.create/batch',
                                b'[' + with_raw(GENRE, 'name', deep(10_000, 'object')) + b']',
                                JSON, True, 400),
    'huge-integer': ('user.credit', with_raw(CREDIT, 'amount', '9' * 100_000), JSON, False, 400),
    'inf': ('user.credit', with_raw(CREDIT, 'amount', '1e400'), JSON, False, 400),
    'text-plain': ('genre.create', json.dumps(GENRE).encode(), 'text/plain', False, 415),
    'no-content-type': ('genre.create', json.dumps(GENRE).encode(), None, False, 415),
    'empty': ('genre.create', b'', JSON, False, 400),
    'empty-chunked': ('genre.create', b'', JSON, True, 400),
    'array-for-object': ('genre.create', json.dumps([GENRE]).encode(), JSON, False, 400),
}


@pytest.mark.parametrize('case', sorted(HTTP_CASES))
def test_over_http(web, case):
    path, data, content_type, chunked, expected = HTTP_CASES[case]
    headers = {'Content-Type': content_type} if content_type else {}
    start = time.monotonic()
    response = requests.post(f'{web}/jobs/{path}', data=_chunks(data) if chunked else data,
                             headers=headers, timeout=10)
    elapsed = time.monotonic() - start
    assert_sound(response.status_code, response.headers.get('Content-Type', '').split(';')[0],
                 response.content, elapsed, lambda: case)
    assert response.status_code == expected, (case, response.text[:300])
