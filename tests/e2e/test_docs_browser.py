"""GET /docs in a real browser: headless Chromium loads the page from a real
HTTP server, runs Swagger UI from the service's own assets, fetches
/openapi.json and renders it; every job kind must appear in the rendered DOM
(and not in the page as served: it is the document that brought them)."""
import os
import shutil
import subprocess
import threading

import pytest
import requests
from werkzeug.serving import make_server

from tests.settings import DATABASE_URL, redis_url

CHROMIUM = '/usr/bin/chromium'
BROKER_URL = redis_url(4)
API_TOKEN = 'docs-e2e-token-0123456789'

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f'{CHROMIUM} is missing (Debian: apt-get install --no-install-recommends chromium)')


@pytest.fixture
def server(env):
    """The service app served over HTTP on a free port, in a thread; API tokens
    are set, so the page must load without one."""
    from web import create_app
    app = create_app(config={'SQLALCHEMY_DEFAULT': DATABASE_URL, 'CELERY_BROKER_URL': BROKER_URL,
                             'FLASK_API_TOKENS': API_TOKEN})
    httpd = make_server('127.0.0.1', 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_port}'
    httpd.shutdown()
    thread.join(10)


def rendered_dom(url, profile_dir):
    """The DOM of `url` once its scripts have run (virtual time lets the page
    load and render before the dump), with no network but the given server."""
    command = [
        CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
        '--no-first-run', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--disable-dev-shm-usage', f'--user-data-dir={profile_dir}',
        '--virtual-time-budget=10000', '--dump-dom', url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_docs_render_every_kind_in_the_browser(server, tmp_path):
    from tasks import load_all
    kinds = sorted(load_all())
    assert kinds
    page = requests.get(server + '/docs', timeout=30)
    assert page.status_code == 200
    assert requests.get(server + '/jobs', timeout=30).status_code == 401  # tokens are on

    dom = rendered_dom(server + '/docs', tmp_path / 'profile')

    assert 'swagger-ui' in dom and 'opblock' in dom, dom[:2000]  # Swagger UI has rendered
    assert 'Message-queue worker service' in dom
    for name in kinds:
        assert name not in page.text, f'{name} is in the static page'
        assert f'/jobs/{name}' in dom, f'{name} was not rendered'
        assert f'/jobs/{name}/batch' in dom
    for path in ('/jobs/{job_id}', '/jobs/{job_id}/retry', '/kinds', '/health'):
        assert path in dom, path
    assert 'Failed to load API definition' not in dom
    shutil.rmtree(tmp_path / 'profile', ignore_errors=True)
