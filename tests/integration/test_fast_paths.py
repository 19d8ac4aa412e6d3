"""web/fast_paths.py: the plain single-job POST and the polled GET answered
in front of Flask, with Flask's own answers, the rate limits counted in
flask-limiter's own counts; everything else, and every failure, answered by
Flask. In-process against the real database and Redis (db 11, no worker)."""
import pytest
from werkzeug.test import Client

from pg.exceptions import ConnectionLostError
from tests.integration.jobs import stored_jobs
from tests.integration.service import service_fixtures
from tests.settings import redis_url
from web.fast_paths import FastPaths

BROKER_URL = redis_url(11)
GENRE = {'name': 'jazz', 'description': 'swing'}
TOKEN = 'fast-post-token-0123456789'
READER = 'fast-post-reader-0123456789'

broker, make_app, clean, app, client = service_fixtures(BROKER_URL)


def count_flask(app):
    """The list of the paths of the requests that will reach Flask (the hot
    path handed them over)."""
    fast = app.wsgi_app
    assert isinstance(fast, FastPaths)
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


def test_the_enqueue_limit_counts_the_hot_path_and_flask_together(make_app, clean):
    """flask-limiter's own count in Redis: the hot path's POSTs and Flask's
    (a batch) share it, and the one past it is Flask's 429."""
    app = make_app(FLASK_API_TOKENS=TOKEN, FLASK_RATE_LIMIT_ENQUEUE='3/minute')
    calls = count_flask(app)
    c = app.test_client()
    auth = {'Authorization': f'Bearer {TOKEN}'}
    codes = [c.post('/jobs/genre.create', json=GENRE, headers=auth).status_code,
             c.post('/jobs/genre.create/batch', json=[GENRE], headers=auth).status_code,
             c.post('/jobs/genre.create', json=GENRE, headers=auth).status_code,
             c.post('/jobs/genre.create', json=GENRE, headers=auth).status_code]
    assert codes == [202, 202, 202, 429]
    assert calls == ['/jobs/genre.create/batch', '/jobs/genre.create']


def test_a_request_the_hot_path_counted_and_handed_over_is_counted_once(make_app, clean):
    app = make_app(FLASK_API_TOKENS=TOKEN, FLASK_RATE_LIMIT_ENQUEUE='2/minute')
    calls = count_flask(app)
    c = app.test_client()
    auth = {'Authorization': f'Bearer {TOKEN}'}
    codes = [c.post('/jobs/genre.create', json=body, headers=auth).status_code
             for body in ({'name': 'jazz'}, GENRE, GENRE)]
    assert codes == [400, 202, 429]
    assert calls == ['/jobs/genre.create', '/jobs/genre.create']


def test_a_rate_limit_past_is_the_same_429_as_flasks(make_app, clean):
    app = make_app(FLASK_API_TOKENS=TOKEN, FLASK_RATE_LIMIT_ENQUEUE='1/minute')
    c = app.test_client()
    auth = {'Authorization': f'Bearer {TOKEN}'}
    assert c.post('/jobs/genre.create', json=GENRE, headers=auth).status_code == 202
    past = c.post('/jobs/genre.create', json=GENRE, headers=auth)
    assert past.status_code == 429 and past.get_json()['code'] == 429
    assert int(past.headers['Retry-After']) >= 1


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


def posted(client):
    answer = client.post('/jobs/genre.create', json=GENRE)
    assert answer.status_code == 202
    return answer.get_json()['id']


def test_a_polled_job_is_answered_before_flask_as_flask_answers_it(app, client, flask_calls):
    job_id = posted(client)
    fast = client.get(f'/jobs/{job_id}', headers={'X-Request-ID': 'poll-1'})
    assert flask_calls == []
    slow = flask_only(app).get(f'/jobs/{job_id}')
    assert fast.status_code == 200 and fast.get_json()['id'] == job_id
    assert shape(fast) == shape(slow) and fast.get_data() == slow.get_data()
    assert fast.headers['X-Request-ID'] == 'poll-1'


@pytest.mark.parametrize('path', [
    '/jobs/{id}?fields=status',     # a query string
    '/jobs/0{id}',                  # a leading zero
    '/jobs/0',                      # no such job: 404
    '/jobs/123456789',              # no such job: 404
    '/jobs/9223372036854775808',    # past the largest id: 404
    '/jobs/\u0663',                # an Arabic-Indic digit: 404
    '/jobs/{id}/',                  # not the route: 404
])
def test_any_other_get_is_flasks_to_answer(app, client, flask_calls, path):
    path = path.format(id=posted(client))
    answer = client.get(path)
    assert len(flask_calls) == 1
    assert shape(answer) == shape(flask_only(app).get(path))


def test_a_polls_token_and_scope_are_checked_as_flask_checks_them(make_app, clean):
    app = make_app(FLASK_API_TOKENS=f'{TOKEN}:enqueue,{READER}:read',
                   FLASK_RATE_LIMIT_ENQUEUE='', FLASK_RATE_LIMIT_READ='', FLASK_RATE_LIMIT_ADMIN='')
    c = app.test_client()
    job_id = c.post('/jobs/genre.create', json=GENRE,
                    headers={'Authorization': f'Bearer {TOKEN}'}).get_json()['id']
    calls = count_flask(app)
    ok = c.get(f'/jobs/{job_id}', headers={'Authorization': f'Bearer {READER}'})
    assert ok.status_code == 200 and calls == []
    assert c.get(f'/jobs/{job_id}').status_code == 401
    assert c.get(f'/jobs/{job_id}', headers={'Authorization': f'Bearer {TOKEN}'}).status_code == 403
    assert len(calls) == 2


def test_the_read_limit_counts_polls_and_listings_together(make_app, clean):
    app = make_app(FLASK_API_TOKENS=TOKEN, FLASK_RATE_LIMIT_READ='2/minute',
                   FLASK_RATE_LIMIT_ENQUEUE='')
    c = app.test_client()
    auth = {'Authorization': f'Bearer {TOKEN}'}
    job_id = c.post('/jobs/genre.create', json=GENRE, headers=auth).get_json()['id']
    calls = count_flask(app)
    codes = [c.get(f'/jobs/{job_id}', headers=auth).status_code,
             c.get('/jobs', headers=auth).status_code,
             c.get(f'/jobs/{job_id}', headers=auth).status_code]
    assert codes == [200, 200, 429]
    assert calls == ['/jobs', f'/jobs/{job_id}']


def test_a_failed_read_is_answered_by_flask_with_the_requests_id(app, client, flask_calls,
                                                                 monkeypatch):
    job_id = posted(client)

    def down(job_id):
        raise ConnectionLostError('the database went away')
    monkeypatch.setattr('web.fast_paths.public_job', down)
    answer = client.get(f'/jobs/{job_id}', headers={'X-Request-ID': 'poll-down'})
    assert flask_calls == [f'/jobs/{job_id}']
    assert answer.status_code == 503 and answer.get_json()['code'] == 503
    assert answer.headers['X-Request-ID'] == 'poll-down'


def test_a_groups_requests_of_one_token_are_counted_together_and_the_first_to_fit_admitted(
        make_app, clean):
    from web.rate_limits import EXTENSION, admitted
    app = make_app(FLASK_API_TOKENS=f'{TOKEN},{READER}', FLASK_RATE_LIMIT_ENQUEUE='3/minute')
    storage = app.extensions[EXTENSION].storage
    increments = []
    counting = storage.incr

    def incr(key, expiry, amount=1):
        increments.append(amount)
        return counting(key, expiry, amount)
    storage.incr = incr
    mine, other = ('fp-mine', 'enqueue'), ('fp-other', 'enqueue')
    answers = admitted(app, [mine, mine, None, mine, other, mine, ('fp-mine', 'read')])
    assert answers == [True, True, True, True, True, False, True]
    assert sorted(increments) == [1, 1, 4]  # one count a token and scope
    assert admitted(app, [mine, other]) == [False, True]


def test_concurrent_posts_past_the_limit_are_refused_exactly(make_app, clean):
    import threading
    app = make_app(FLASK_API_TOKENS=TOKEN, FLASK_RATE_LIMIT_ENQUEUE='5/minute')
    auth = {'Authorization': f'Bearer {TOKEN}'}
    codes, start = [], threading.Barrier(8)

    def post():
        client = app.test_client()
        start.wait()
        codes.append(client.post('/jobs/genre.create', json=GENRE, headers=auth).status_code)
    posts = [threading.Thread(target=post) for _ in range(8)]
    for thread in posts:
        thread.start()
    for thread in posts:
        thread.join(10)
    assert sorted(codes) == [202] * 5 + [429] * 3
    assert len(stored_jobs(app)) == 5
