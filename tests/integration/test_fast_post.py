"""web/fast_post.py: the plain single-job POST answered in front of Flask,
with Flask's own answer; everything else, and every failure, answered by
Flask. In-process against the real database and Redis (db 11, no worker)."""
import pytest
from werkzeug.test import Client

from pg.exceptions import ConnectionLostError
from tests.integration.jobs import stored_jobs
from tests.integration.service import service_fixtures
from tests.settings import redis_url
from web.fast_post import FastPost

BROKER_URL = redis_url(11)
GENRE = {'name': 'jazz', 'description': 'swing'}
TOKEN = 'fast-post-token-0123456789'
READER = 'fast-post-reader-0123456789'

broker, make_app, clean, app, client = service_fixtures(BROKER_URL)


def count_flask(app):
    """The list of the paths of the requests that will reach Flask (the hot
    path handed them over)."""
    fast = app.wsgi_app
    assert isinstance(fast, FastPost)
    calls = []
    flask_app = fast.wsgi_app

    def counted(environ, start_response):
        calls.append(environ['PATH_INFO'])
        return flask_app(environ, start_response)
    fast.wsgi_app = counted
    return calls


@pytest.fixture
def flask_calls(app):
    return count_flask(app)


def flask_only(app):
    """A client of the same app with no hot path: Flask's own answers."""
    return Client(app.wsgi_app.wsgi_app)


def shape(response):
    """What must match between the two paths: all but the ids."""
    body = response.get_json()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ('id', 'status_url', 'run_at')}
    headers = sorted((k, v) for k, v in response.headers.items()
                     if k not in ('Location', 'X-Request-ID'))
    return response.status, headers, body


def test_a_plain_post_is_answered_before_flask_as_flask_answers_it(app, client, flask_calls):
    fast = client.post('/jobs/genre.create', json=GENRE, headers={'X-Request-ID': 'req-1'})
    assert flask_calls == []
    slow = flask_only(app).post('/jobs/genre.create', json=GENRE)
    assert shape(fast) == shape(slow)
    job_id = fast.get_json()['id']
    assert fast.get_json()['status_url'] == fast.headers['Location'] == f'/jobs/{job_id}'
    assert fast.headers['X-Request-ID'] == 'req-1'
    assert fast.get_data() == slow.get_data().replace(
        str(slow.get_json()['id']).encode(), str(job_id).encode())
    [job] = [j for j in stored_jobs(app) if j['id'] == job_id]
    assert (job['kind'], job['payload'], job['status']) == ('genre.create', GENRE, 'queued')
    with app.app_context():
        import ledger
        assert ledger.get(job_id).request_id == 'req-1'


@pytest.mark.parametrize('path, body, headers', [
    ('/jobs/genre.create?delay=5', GENRE, {}),                     # scheduled
    ('/jobs/genre.create', GENRE, {'Idempotency-Key': 'k-1'}),     # a key to look up
    ('/jobs/genre.create', {'name': 'jazz'}, {}),                  # invalid payload: 400
    ('/jobs/no.such', GENRE, {}),                                  # unknown kind: 404
    ('/jobs/genre.create/', GENRE, {}),                            # not the route: 404
    ('/jobs/genre.create', None, {'Content-Type': 'text/plain'}),  # not JSON: 415
    ('/jobs/genre.create', b'{"name": ', {}),                      # broken JSON: 400
    ('/jobs/genre.create', b'{"name": NaN}', {}),                  # not JSON either: 400
    ('/jobs/genre.create', b'{"name": "a\\u0000"}', {}),           # cannot be stored: 400
    ('/jobs/genre.create', GENRE, {'X-Long': 'x' * 9000}),         # a field too long: 431
])
def test_anything_else_is_flasks_to_answer(app, client, flask_calls, path, body, headers):
    def send(c):
        if isinstance(body, bytes):
            return c.post(path, data=body, headers={'Content-Type': 'application/json', **headers})
        if body is None:
            return c.post(path, data='x', headers=headers)
        return c.post(path, json=body, headers=headers)
    answer = send(client)
    assert flask_calls == [path.split('?')[0]]
    assert shape(answer) == shape(send(flask_only(app)))


def test_a_body_past_the_limit_is_flasks_413(make_app, clean):
    app = make_app(FLASK_MAX_CONTENT_LENGTH=64)
    answer = app.test_client().post('/jobs/genre.create',
                                    json={'name': 'x' * 100, 'description': 'y'})
    assert answer.status_code == 413 and answer.get_json()['code'] == 413


def test_tokens_and_scopes_are_checked_as_flask_checks_them(make_app, clean):
    app = make_app(FLASK_API_TOKENS=f'{TOKEN}:enqueue,{READER}:read',
                   FLASK_RATE_LIMIT_ENQUEUE='', FLASK_RATE_LIMIT_READ='', FLASK_RATE_LIMIT_ADMIN='')
    calls = count_flask(app)
    c = app.test_client()
    ok = c.post('/jobs/genre.create', json=GENRE, headers={'Authorization': f'Bearer {TOKEN}'})
    assert ok.status_code == 202 and calls == []
    assert c.post('/jobs/genre.create', json=GENRE).status_code == 401
    assert c.post('/jobs/genre.create', json=GENRE,
                  headers={'Authorization': f'Bearer {READER}'}).status_code == 403
    assert c.post('/jobs/genre.create', json=GENRE,
                  headers={'Authorization': 'Bearer nope'}).status_code == 401
    assert len(calls) == 3


def test_a_rate_limited_enqueue_goes_through_flask_and_its_limiter(make_app, clean):
    app = make_app(FLASK_API_TOKENS=TOKEN, FLASK_RATE_LIMIT_ENQUEUE='2/minute',
                   FLASK_RATE_LIMIT_STORAGE_URL='memory://')
    c = app.test_client()
    auth = {'Authorization': f'Bearer {TOKEN}'}
    codes = [c.post('/jobs/genre.create', json=GENRE, headers=auth).status_code
             for _ in range(3)]
    assert codes == [202, 202, 429]


def test_a_failed_group_commit_is_answered_by_flask_with_the_requests_id(app, client,
                                                                         flask_calls):
    group_commit = app.extensions['group_commit']

    def down(jobs):
        raise ConnectionLostError('the database went away')
    group_commit._flush = down
    answer = client.post('/jobs/genre.create', json=GENRE, headers={'X-Request-ID': 'req-down'})
    assert flask_calls == ['/jobs/genre.create']
    assert answer.status_code == 503 and answer.get_json()['code'] == 503
    assert answer.headers['X-Request-ID'] == 'req-down'
