"""The API as a contract, against the running service (gunicorn and the worker
started from the Procfile, with tokens of different scopes):

- a Python client generated from GET /openapi.json by a standard generator
  (openapi-python-client) enqueues, reads, lists and retries jobs, and gets
  each documented error as the document's Error model;
- the rate limit of a token holds across two web servers (one Redis count).

Cancel (issue 12) is not part of the API yet."""
import importlib
import os
import subprocess
import sys
import time

import pytest
import redis
import requests

from cli.processes import Process
from tests.e2e.service import Service, free_port
from tests.settings import BROKER_URL

FULL = 'full-token-0123456789'
READER = 'reader-token-0123456789'
LIMITED = 'limited-token-0123456789'
ADMIN_LIMIT = 6  # per hour: no window ends during the test


@pytest.fixture(scope='module')
def service(service_env, tmp_path_factory):
    """web (two gunicorn processes), a second web server on another port, and
    the worker, with tokens of every scope and a small admin rate limit."""
    redis.Redis.from_url(BROKER_URL).flushdb()
    env = {**service_env,
           'FLASK_API_TOKENS': f'{FULL},{READER}:read,{LIMITED}:admin',
           'FLASK_RATE_LIMIT_ADMIN': f'{ADMIN_LIMIT}/hour',
           'PORT': str(free_port())}
    svc = Service(env, str(tmp_path_factory.mktemp('contract-logs')))
    svc.http.headers['Authorization'] = f'Bearer {FULL}'
    with svc.app.app_context():
        svc.db.syncdb()
        svc.db.cleandb()
    second_port = free_port()
    second = Process('web', {**env, 'PORT': str(second_port)},
                     str(tmp_path_factory.mktemp('second-web')))
    with svc.running('web', 'worker'):
        svc.second_url = f'http://127.0.0.1:{second_port}'
        _wait(svc.second_url + '/health', second)
        try:
            yield svc
        finally:
            second.stop()


def _wait(url, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f'{url} did not come up:\n{process.log()}')


@pytest.fixture(scope='module')
def generated(service, tmp_path_factory):
    """The client package openapi-python-client generates from the service's
    own /openapi.json, imported."""
    folder = tmp_path_factory.mktemp('generated')
    document = folder / 'openapi.json'
    document.write_bytes(requests.get(service.url + '/openapi.json', timeout=10).content)
    bin_dir = os.path.dirname(sys.executable)
    run = subprocess.run(
        [os.path.join(bin_dir, 'openapi-python-client'), 'generate', '--path', str(document),
         '--output-path', str(folder / 'service_client'), '--meta', 'none'],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, 'PATH': bin_dir + os.pathsep + os.environ.get('PATH', '')})
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert 'Warning' not in output, output  # every part of the document was understood
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module('service_client')
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m.split('.')[0] == 'service_client']:
            del sys.modules[name]


def _op(package, name):
    return importlib.import_module(f'service_client.api.{name}')


def test_a_generated_client_enqueues_reads_lists_retries_and_gets_each_error(service, generated):
    from service_client.client import AuthenticatedClient
    from service_client.models import Accepted, Error, GenreCreate, JobStatus

    full = AuthenticatedClient(base_url=service.url, token=FULL, timeout=30)
    reader = AuthenticatedClient(base_url=service.url, token=READER, timeout=30)
    stranger = AuthenticatedClient(base_url=service.url, token='not-a-token-0123456789')
    create = _op(generated, 'jobs.create_genre_create')
    create_batch = _op(generated, 'jobs.create_genre_create_batch')
    update = _op(generated, 'jobs.create_genre_update')
    get_job = _op(generated, 'jobs.get_job')
    list_jobs = _op(generated, 'jobs.list_jobs')
    retry = _op(generated, 'jobs.retry_job')
    list_kinds = _op(generated, 'jobs.list_kinds')

    def error(response, status):
        assert response.status_code == status, response.content
        assert isinstance(response.parsed, Error), response.content
        assert response.parsed.code == status and response.parsed.message
        return response.parsed

    # Enqueue, read, list.
    accepted = create.sync_detailed(client=full, body=GenreCreate(name='jazz', description='s'))
    assert accepted.status_code == 202 and isinstance(accepted.parsed, Accepted)
    job_id = accepted.parsed.id
    batch = create_batch.sync_detailed(client=full, body=[GenreCreate(name='a', description='b'),
                                                          GenreCreate(name='c', description='d')])
    assert batch.status_code == 202 and len(batch.parsed.ids) == 2
    service.wait_jobs([job_id, *batch.parsed.ids])
    job = get_job.sync(job_id, client=reader)
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 1 and job.result['id'] > 0
    listed = list_jobs.sync(client=reader, status=JobStatus.SUCCEEDED, kind='genre.create', limit=5)
    assert {job_id, *batch.parsed.ids} <= {j.id for j in listed.jobs}
    kinds = list_kinds.sync(client=stranger)  # open, as the document says
    assert 'genre.create' in {k.name for k in kinds.kinds}

    # Retry a failed job: queued again, fails again (the genre does not exist).
    # genre.update's schema has a top-level anyOf: the generator takes a plain dict.
    failing = update.sync(client=full, body={'id': 2**31 - 1, 'name': 'x'})
    service.wait_jobs([failing.id])
    assert get_job.sync(failing.id, client=full).status == JobStatus.FAILED
    again = retry.sync_detailed(failing.id, client=full)
    assert again.status_code == 202 and again.parsed.id == failing.id
    service.wait_jobs([failing.id])

    # Each documented error, in the Error model.
    error(create.sync_detailed(client=full, body=GenreCreate(name='x' * 300, description='d')),
          400)
    error(create.sync_detailed(client=stranger, body=GenreCreate(name='n', description='d')), 401)
    assert 'enqueue' in error(create.sync_detailed(
        client=reader, body=GenreCreate(name='n', description='d')), 403).message
    error(retry.sync_detailed(job_id, client=reader), 403)
    error(get_job.sync_detailed(2**62, client=full), 404)
    error(retry.sync_detailed(job_id, client=full), 409)  # it succeeded
    big = [GenreCreate(name='n' * 250, description='d' * 250)] * 2100
    error(create_batch.sync_detailed(client=full, body=big), 413)
    raw = full.get_httpx_client().post('/jobs/genre.create', content=b'name=x',
                                       headers={'Content-Type': 'text/plain'})
    error(create._build_response(client=full, response=raw), 415)
    key = f'contract-{time.monotonic_ns()}'
    first = create.sync_detailed(client=full, body=GenreCreate(name='k', description='1'),
                                 idempotency_key=key)
    replay = create.sync_detailed(client=full, body=GenreCreate(name='k', description='1'),
                                  idempotency_key=key)
    assert first.status_code == replay.status_code == 202
    assert replay.parsed.id == first.parsed.id
    error(create.sync_detailed(client=full, body=GenreCreate(name='k', description='2'),
                               idempotency_key=key), 422)
    batch_key = key + '-batch'
    assert create_batch.sync_detailed(client=full, body=[GenreCreate(name='k', description='3')],
                                      idempotency_key=batch_key).status_code == 202
    error(create_batch.sync_detailed(client=full, body=[GenreCreate(name='k', description='4')],
                                     idempotency_key=batch_key), 422)
    # The admin scope's limit: the retries above count; the rest of the hour is 429.
    answers = [retry.sync_detailed(job_id, client=full) for _ in range(ADMIN_LIMIT)]
    limited = error(answers[-1], 429)
    assert 'admin' in limited.message
    assert int(answers[-1].headers['Retry-After']) > 3000
    assert {a.status_code for a in answers} <= {409, 429}


def test_503_in_the_error_model_when_redis_is_unreachable(service, generated, tmp_path):
    """A web server whose broker (and rate-limit store) is down answers the
    enqueue 503 with Retry-After, as documented."""
    from service_client.client import AuthenticatedClient
    from service_client.models import Error, GenreCreate

    with socket_closed_port() as closed:
        port = free_port()
        down = Process('web', {**service.env, 'PORT': str(port),
                               'CELERY_BROKER_URL': f'redis://127.0.0.1:{closed}/0'},
                       str(tmp_path))
        try:
            url = f'http://127.0.0.1:{port}'
            deadline = time.monotonic() + 60
            while True:
                try:
                    requests.get(url + '/openapi.json', timeout=5)
                    break
                except requests.RequestException:
                    assert time.monotonic() < deadline, down.log()
                    time.sleep(0.2)
            client = AuthenticatedClient(base_url=url, token=FULL, timeout=30)
            create = _op(generated, 'jobs.create_genre_create')
            response = create.sync_detailed(client=client,
                                            body=GenreCreate(name='n', description='d'))
            assert response.status_code == 503 and isinstance(response.parsed, Error)
            assert int(response.headers['Retry-After']) > 0
        finally:
            down.stop()


class socket_closed_port:
    """A port nothing listens on (bound, never listening, for the block)."""

    def __enter__(self):
        import socket
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc):
        self.sock.close()


def test_a_tokens_rate_limit_holds_across_two_web_servers(service):
    """LIMITED's admin requests, alternated between two gunicorn servers (each
    of its own processes): exactly ADMIN_LIMIT get through, the rest are 429."""
    answers = []
    for n in range(ADMIN_LIMIT + 4):
        url = (service.url, service.second_url)[n % 2]
        answers.append(requests.post(f'{url}/jobs/{2**62}/retry', timeout=10,
                                     headers={'Authorization': f'Bearer {LIMITED}'}))
    statuses = [r.status_code for r in answers]
    assert statuses == [404] * ADMIN_LIMIT + [429] * 4, statuses
    for response in answers[ADMIN_LIMIT:]:
        body = response.json()
        assert body['code'] == 429 and 'admin' in body['message']
        assert 0 < int(response.headers['Retry-After']) <= 3601
    # Another token's count is its own; the open endpoints are not limited.
    assert requests.get(f'{service.second_url}/jobs/1', timeout=10,
                        headers={'Authorization': f'Bearer {READER}'}).status_code in (200, 404)
    assert all(requests.get(f'{service.url}/health', timeout=10).status_code == 200
               for _ in range(ADMIN_LIMIT + 2))


def test_oversize_lines_and_headers_through_gunicorn_get_the_envelope(service):
    """gunicorn's limits are above the app's: the app answers 414 and 431 in
    the envelope; only past gunicorn's own (a line over 8190 bytes) is the
    answer gunicorn's HTML, as the README says."""
    def envelope(response, status):
        assert response.status_code == status, response.text[:200]
        assert response.json()['code'] == status and response.headers['X-Request-ID']
    envelope(requests.get(f'{service.url}/jobs?kind={"k" * 5000}', timeout=10), 414)
    envelope(requests.get(f'{service.url}/jobs', timeout=10,
                          headers={'X-Big': 'v' * 10_000}), 431)
    envelope(requests.get(f'{service.url}/jobs', timeout=10,
                          headers={f'X-Extra-{n}': 'v' for n in range(150)}), 431)
    beyond = requests.get(f'{service.url}/jobs?kind={"k" * 9000}', timeout=10)
    assert beyond.status_code in (400, 414) and 'html' in beyond.headers['Content-Type']
