"""The HTTP front in-process (Flask's test client) against the real test
database and the real Redis (db 11 as the broker); no worker runs, so every
accepted job stays queued."""
import json

import pytest

from tests.integration.jobs import GENRE, VALID, stored_jobs
from tests.integration.service import kill_client_backends, service_fixtures
from tests.settings import redis_url

BROKER_URL = redis_url(11)
CLOSED_PORT_REDIS = 'redis://127.0.0.1:1/0'
CLOSED_PORT_POSTGRES = 'postgresql://ds:dsps@127.0.0.1:1/ds_test'


def _kinds():
    from tasks import load_all
    return sorted(load_all())


broker, make_app, clean, app, client = service_fixtures(BROKER_URL)


def assert_error(response, status, *paths):
    """The answer is the error envelope with this status; `paths`, if given,
    are among its errors' JSON pointers."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert body['code'] == status
    assert isinstance(body['message'], str) and body['message']
    if paths:
        reported = [e['path'] for e in body['errors']]
        for entry in body['errors']:
            assert entry['path'].startswith('/') and isinstance(entry['message'], str)
        for path in paths:
            assert path in reported, reported
    return body


def post_raw(client, url, data, content_type='application/json', **kwargs):
    return client.post(url, data=data, content_type=content_type, **kwargs)


# --- accepting one job ------------------------------------------------------

def test_valid_job_is_accepted_recorded_and_queued(app, client, broker):
    response = client.post('/jobs/genre.create', json=GENRE)
    assert response.status_code == 202
    body = response.get_json()
    assert set(body) == {'id', 'kind', 'status', 'status_url'}
    assert body['kind'] == 'genre.create' and body['status'] == 'queued'
    assert isinstance(body['id'], int)
    assert body['status_url'] == f'/jobs/{body["id"]}'
    assert response.headers['Location'] == body['status_url']

    status = client.get(body['status_url'])
    assert status.status_code == 200
    job = status.get_json()
    assert set(job) == {'id', 'kind', 'status', 'attempts', 'result', 'error',
                        'created_at', 'updated_at', 'request_id', 'run_at'}
    assert (job['id'], job['kind'], job['status'], job['attempts']) == (
        body['id'], 'genre.create', 'queued', 0)

    assert stored_jobs(app) == [
        {'id': body['id'], 'kind': 'genre.create', 'status': 'queued', 'payload': GENRE}]
    assert broker.llen('jobs') >= 1  # the message went to the real broker


@pytest.mark.parametrize('payload, path', [
    ({'name': 'jazz'}, '/description'),
    ({**GENRE, 'x': 1}, '/x'),
], ids=['missing-field', 'unknown-field'])
def test_genre_schema_violations_name_the_path(app, client, payload, path):
    assert_error(client.post('/jobs/genre.create', json=payload), 400, path)
    assert stored_jobs(app) == []


def test_wrong_type_names_the_path(app, client):
    payload = {'name': 'Monk', 'description': 'piano', 'genre_id': 'one'}
    body = assert_error(client.post('/jobs/artist.create', json=payload), 400, '/genre_id')
    assert '/genre_id' in body['message']
    assert stored_jobs(app) == []


@pytest.mark.parametrize('data', [
    b'{"name": "jazz",',                     # not JSON
    b'{"name": "\xff\xfe\xfa", "description": "x"}',  # invalid UTF-8
    b'{"name": "jazz", "description": NaN}',
    b'{"name": "jazz", "description": Infinity}',
    b'{"name": "jazz", "description": -Infinity}',
    b'[' * 10_000 + b']' * 10_000,           # nested too deeply
    b'{"a":' * 10_000 + b'1' + b'}' * 10_000,
    b'[{"name": "jazz", "description": "swing"}]',  # an array, not an object
    b'"jazz"',
    b'null',
    b'',                                     # empty, yet declared JSON
], ids=['truncated', 'invalid-utf8', 'nan', 'infinity', 'minus-infinity', 'deep-array',
        'deep-object', 'array', 'string', 'null', 'empty'])
def test_bodies_that_are_not_a_json_object_are_400(app, client, data):
    assert_error(post_raw(client, '/jobs/genre.create', data), 400)
    assert stored_jobs(app) == []


def test_deep_nesting_inside_a_field_is_400(app, client):
    deep = b'[' * 900 + b']' * 900
    data = b'{"name": ' + deep + b', "description": "x"}'
    assert_error(post_raw(client, '/jobs/genre.create', data), 400)
    assert_error(post_raw(client, '/jobs/genre.create/batch', b'[' + data + b']'), 400)
    assert stored_jobs(app) == []


@pytest.mark.parametrize('data, path', [
    (r'{"name": "a\u0000b", "description": "x"}', '/name'),
    (r'{"name": "a", "description": "\ud800"}', '/description'),
    (r'{"name": "a", "description": "b", "\u0000": 1}', '/\x00'),
], ids=['nul', 'lone-surrogate', 'nul-in-key'])
def test_strings_postgres_cannot_store_are_400(app, client, data, path):
    """JSON allows \\u0000 and unpaired surrogates; jsonb refuses them."""
    body = assert_error(post_raw(client, '/jobs/genre.create', data), 400)
    assert [e['path'] for e in body['errors']] == [path]
    batch = f'[{json.dumps(GENRE)}, {data}]'
    body = assert_error(post_raw(client, '/jobs/genre.create/batch', batch), 400)
    assert body['errors'][0]['path'].startswith('/1/')
    assert stored_jobs(app) == []


def test_a_paired_surrogate_is_a_character_and_is_accepted(app, client):
    data = r'{"name": "\ud83c\udfb7", "description": "sax"}'
    assert post_raw(client, '/jobs/genre.create', data).status_code == 202
    assert stored_jobs(app)[0]['payload']['name'] == '\U0001f3b7'


def test_json_content_type_with_charset_is_accepted(client):
    response = post_raw(client, '/jobs/genre.create', json.dumps(GENRE),
                        content_type='application/json; charset=utf-8')
    assert response.status_code == 202


@pytest.mark.parametrize('content_type', ['text/plain', None, 'application/x-www-form-urlencoded'],
                         ids=['text-plain', 'missing', 'form'])
def test_a_body_not_sent_as_json_is_415(app, client, content_type):
    response = client.post('/jobs/genre.create', data=json.dumps(GENRE),
                           content_type=content_type)
    assert_error(response, 415)
    assert stored_jobs(app) == []


def test_an_empty_body_without_content_type_is_415(client):
    assert_error(client.post('/jobs/genre.create'), 415)


def test_a_body_over_the_limit_is_413_and_nothing_is_recorded(make_app, clean):
    app = make_app(FLASK_MAX_CONTENT_LENGTH=1024)
    client = app.test_client()
    big = {'name': 'jazz', 'description': 'x' * 2000}
    assert_error(client.post('/jobs/genre.create', json=big), 413)
    batch = [GENRE] * 40  # each item is valid, the whole is too big
    assert_error(client.post('/jobs/genre.create/batch', json=batch), 413)
    assert stored_jobs(app) == []
    assert client.post('/jobs/genre.create', json=GENRE).status_code == 202


# --- unknown things -----------------------------------------------------------

def test_an_unknown_kind_is_404(app, client):
    body = assert_error(client.post('/jobs/genre.delete', json=GENRE), 404)
    assert 'genre.delete' in body['message']
    assert_error(client.post('/jobs/genre.delete/batch', json=[GENRE]), 404)
    assert stored_jobs(app) == []


@pytest.mark.parametrize('url', [
    '/jobs/424242',
    '/jobs/9223372036854775807',   # the largest bigint
    '/jobs/9223372036854775808',   # past it
    '/jobs/99999999999999999999999',
    '/nowhere',
])
def test_unknown_jobs_and_routes_are_404(client, url):
    assert_error(client.get(url), 404)


def test_retry_of_an_unknown_job_is_404(client):
    assert_error(client.post('/jobs/99999999999999999999999/retry'), 404)
    assert_error(client.post('/jobs/77/retry'), 404)


def test_a_wrong_method_is_405_in_the_envelope(client):
    response = client.delete('/jobs/1')
    assert_error(response, 405)
    assert 'GET' in response.headers['Allow']


# --- authentication -------------------------------------------------------------

def test_bearer_tokens_are_required_when_configured(make_app, clean):
    app = make_app(FLASK_API_TOKENS='t1,t2')
    client = app.test_client()

    response = client.post('/jobs/genre.create', json=GENRE)
    assert_error(response, 401)
    assert response.headers['WWW-Authenticate'] == 'Bearer'
    for header in ['Bearer t3', 'Bearer ', 'Basic t1', 't1', 'Bearer t1,t2', 'Bearer t']:
        response = client.post('/jobs/genre.create', json=GENRE,
                               headers={'Authorization': header})
        assert_error(response, 401)
        assert response.headers['WWW-Authenticate'] == 'Bearer'
    assert_error(client.get('/jobs'), 401)
    assert_error(client.get('/jobs/1'), 401)
    assert client.get('/kinds').status_code == 200  # open, as /openapi.json that holds them
    assert stored_jobs(app) == []

    response = client.post('/jobs/genre.create', json=GENRE,
                           headers={'Authorization': 'Bearer t2'})
    assert response.status_code == 202
    job_url = response.headers['Location']
    assert client.get(job_url, headers={'Authorization': 'bearer t1'}).status_code == 200

    health = client.get('/health')
    assert health.status_code == 200
    assert health.get_json()['status'] == 'ok'


def test_a_token_without_the_scope_of_an_endpoint_is_403(make_app, clean):
    app = make_app(FLASK_API_TOKENS='all-scopes-token,reader-token:read,'
                                    'writer-token:enqueue,admin-token:admin+read')
    client = app.test_client()

    def as_(token):
        return {'Authorization': f'Bearer {token}'}
    job_id = client.post('/jobs/genre.create', json=GENRE,
                         headers=as_('writer-token')).get_json()['id']
    for token, answers in {
        'all-scopes-token': (202, 202, 200, 200, 409),
        'reader-token': (403, 403, 200, 200, 403),
        'writer-token': (202, 202, 403, 403, 403),
        'admin-token': (403, 403, 200, 200, 409),
    }.items():
        got = (client.post('/jobs/genre.create', json=GENRE, headers=as_(token)),
               client.post('/jobs/genre.create/batch', json=[GENRE], headers=as_(token)),
               client.get(f'/jobs/{job_id}', headers=as_(token)),
               client.get('/jobs', headers=as_(token)),
               client.post(f'/jobs/{job_id}/retry', headers=as_(token)))
        assert tuple(r.status_code for r in got) == answers, token
        for response in got:
            if response.status_code == 403:
                body = assert_error(response, 403)
                assert 'scope' in body['message']
                assert 'insufficient_scope' in response.headers['WWW-Authenticate']
    # A route that does not exist is 404 for any token; a wrong token is still 401.
    assert_error(client.get('/nothing', headers=as_('writer-token')), 404)
    assert_error(client.get('/jobs', headers=as_('reader-token:read')), 401)


def test_unknown_scopes_stop_the_start_naming_the_entry_not_the_token(make_app, clean):
    from service.errors import ConfigError
    with pytest.raises(ConfigError) as refused:
        make_app(FLASK_API_TOKENS='good-token,secret-token-value:read+root')
    assert 'token 2' in str(refused.value) and 'secret-token-value' not in str(refused.value)


# --- backing services down ------------------------------------------------------

def test_redis_down_is_503_and_the_recorded_job_is_withdrawn(make_app, clean):
    app = make_app(CELERY_BROKER_URL=CLOSED_PORT_REDIS)
    client = app.test_client()

    response = client.post('/jobs/genre.create', json=GENRE)
    assert_error(response, 503)
    assert int(response.headers['Retry-After']) > 0
    response = client.post('/jobs/genre.create/batch', json=[GENRE, GENRE])
    assert_error(response, 503)
    assert 'Retry-After' in response.headers
    assert stored_jobs(app) == []

    health = client.get('/health')
    body = assert_error(health, 503)
    assert 'redis' in body['message'] and 'postgres' not in body['message']
    assert body['checks'] == {'postgres': 'ok', 'redis': 'down'}
    assert 'Retry-After' in health.headers


def test_postgres_down_is_503_and_the_app_still_builds(make_app):
    app = make_app(SQLALCHEMY_DEFAULT=CLOSED_PORT_POSTGRES)  # must not connect yet
    client = app.test_client()

    for response in [client.post('/jobs/genre.create', json=GENRE),
                     client.post('/jobs/genre.create/batch', json=[GENRE]),
                     client.get('/jobs/1'),
                     client.get('/jobs?status=queued')]:
        assert_error(response, 503)
        assert int(response.headers['Retry-After']) > 0

    health = client.get('/health')
    body = assert_error(health, 503)
    assert 'postgres' in body['message'] and 'redis' not in body['message']
    assert body['checks'] == {'postgres': 'down', 'redis': 'ok'}
    assert 'Retry-After' in health.headers


def test_health_is_200_when_both_answer(client):
    response = client.get('/health')
    assert response.status_code == 200
    assert response.get_json() == {'status': 'ok', 'checks': {'postgres': 'ok', 'redis': 'ok'}}


# --- batches ------------------------------------------------------------------------

def test_a_valid_batch_is_accepted(app, client):
    batch = [{'name': f'g{i}', 'description': 'd'} for i in range(3)]
    response = client.post('/jobs/genre.create/batch', json=batch)
    assert response.status_code == 202
    ids = response.get_json()['ids']
    assert len(ids) == 3 and len(set(ids)) == 3
    jobs = stored_jobs(app)
    assert [j['id'] for j in jobs] == sorted(ids)
    assert [j['payload'] for j in jobs] == batch
    assert {j['status'] for j in jobs} == {'queued'}
    for job_id in ids:
        assert client.get(f'/jobs/{job_id}').get_json()['status'] == 'queued'


def test_one_invalid_item_refuses_the_whole_batch(app, client):
    batch = [GENRE, {'name': 'jazz', 'x': 1}, GENRE]
    body = assert_error(client.post('/jobs/genre.create/batch', json=batch), 400,
                        '/1/description', '/1/x')
    assert all(e['path'].startswith('/1/') for e in body['errors'])
    assert stored_jobs(app) == []


def test_a_batch_item_that_is_not_an_object_is_400(app, client):
    body = assert_error(client.post('/jobs/genre.create/batch', json=[GENRE, 'jazz']), 400)
    assert all(e['path'].startswith('/1') for e in body['errors'])
    assert stored_jobs(app) == []


def test_a_batch_over_the_limit_is_400(make_app, clean):
    app = make_app(FLASK_BATCH_LIMIT=3)
    client = app.test_client()
    assert_error(client.post('/jobs/genre.create/batch', json=[GENRE] * 4), 400)
    assert stored_jobs(app) == []
    assert client.post('/jobs/genre.create/batch', json=[GENRE] * 3).status_code == 202


def test_the_default_batch_limit_is_1000(app, client):
    body = assert_error(client.post('/jobs/genre.create/batch', json=[GENRE] * 1001), 400)
    assert '1000' in body['message']
    assert stored_jobs(app) == []


@pytest.mark.parametrize('data', [json.dumps(GENRE), '[]', '"jazz"', 'null', '3'],
                         ids=['object', 'empty-array', 'string', 'null', 'number'])
def test_a_batch_that_is_not_a_non_empty_array_is_400(app, client, data):
    assert_error(post_raw(client, '/jobs/genre.create/batch', data), 400)
    assert stored_jobs(app) == []


# --- users: secrets -----------------------------------------------------------------

def test_the_ledger_never_holds_a_clear_text_password(app, client):
    clear = 'correct horse battery'
    payload = {'username': 'ann', 'email': 'ann@example.com', 'password': clear}
    single = client.post('/jobs/user.create', json=payload)
    assert single.status_code == 202
    batch = client.post('/jobs/user.create/batch',
                        json=[{**payload, 'username': 'bob'}])
    assert batch.status_code == 202
    jobs = stored_jobs(app)
    assert len(jobs) == 2
    with app.app_context():
        from ledger import Job
        raw = Job.objects.raw_sql('SELECT payload::text FROM jobs').scalars().all()
    assert raw and all(clear not in text for text in raw)
    from pg.types import PasswordHash
    for job in jobs:
        stored = job['payload']['password']
        assert stored.startswith('$2') and stored != clear
        assert PasswordHash(stored) == clear
        assert {k: v for k, v in job['payload'].items() if k != 'password'} == {
            'username': job['payload']['username'], 'email': 'ann@example.com'}
    assert clear not in single.get_data(as_text=True)
    assert clear not in client.get(single.headers['Location']).get_data(as_text=True)


@pytest.mark.parametrize('password', ['p' * 73, 'é' * 37], ids=['73-ascii', '74-bytes-utf8'])
def test_a_password_over_72_bytes_is_400(app, client, password):
    payload = {'username': 'ann', 'email': 'ann@example.com', 'password': password}
    body = assert_error(client.post('/jobs/user.create', json=payload), 400)
    assert '72' in body['message']
    assert body['errors'][0]['path'] == '/password'
    assert password not in json.dumps(body)
    body = assert_error(client.post('/jobs/user.create/batch',
                                    json=[VALID['user.create'], payload]), 400)
    assert [e['path'] for e in body['errors']] == ['/1/password']
    assert stored_jobs(app) == []


def test_a_password_of_72_bytes_is_accepted(client):
    payload = {'username': 'ann', 'email': 'ann@example.com', 'password': 'p' * 72}
    assert client.post('/jobs/user.create', json=payload).status_code == 202


# --- listing ------------------------------------------------------------------------

def test_list_filters_newest_first_and_limits(app, client):
    ids = [client.post('/jobs/genre.create', json={'name': f'g{i}', 'description': 'd'})
           .get_json()['id'] for i in range(3)]
    other = client.post('/jobs/artist.create', json=VALID['artist.create']).get_json()['id']

    response = client.get('/jobs?status=queued&kind=genre.create&limit=2')
    assert response.status_code == 200
    listed = response.get_json()['jobs']
    assert [j['id'] for j in listed] == [ids[2], ids[1]]
    assert {(j['kind'], j['status']) for j in listed} == {('genre.create', 'queued')}

    everything = client.get('/jobs').get_json()['jobs']
    assert [j['id'] for j in everything] == [other, *reversed(ids)]
    assert client.get('/jobs?status=failed').get_json() == {'jobs': [], 'next': None}
    assert client.get('/jobs?kind=nope').get_json() == {'jobs': [], 'next': None}


@pytest.mark.parametrize('query', [
    'status=done', 'status=', 'status=QUEUED',
    'limit=0', 'limit=-1', 'limit=abc', 'limit=1001', 'limit=', 'limit=2.5',
    'limit=99999999999999999999999', 'limit=%C2%B2', 'limit=' + '9' * 3000,
    'limit=%EF%BC%95',  # a fullwidth 5
    'kind=%00', 'kind=genre.create%00', 'status=queued%00',
], ids=lambda q: q[:40])
def test_list_refuses_an_invalid_status_or_limit(client, query):
    assert_error(client.get(f'/jobs?{query}'), 400)


# --- kinds ----------------------------------------------------------------------------

def test_kinds_lists_every_kind_with_a_closed_schema(client):
    response = client.get('/kinds')
    assert response.status_code == 200
    kinds = response.get_json()['kinds']
    assert [k['name'] for k in kinds] == sorted(
        ['genre.create', 'genre.update', 'artist.create', 'album.create',
         'user.create', 'user.credit'])
    for entry in kinds:
        assert entry['schema']['type'] == 'object'
        assert entry['schema']['additionalProperties'] is False
        assert entry['schema']['required']
        assert isinstance(entry['description'], str) and entry['description']


def test_every_kind_has_a_valid_example_here():
    from tasks import REGISTRY
    assert sorted(VALID) == _kinds()
    for name, payload in VALID.items():
        assert list(REGISTRY[name].validator.iter_errors(payload)) == [], name


@pytest.mark.parametrize('kind', _kinds())
def test_every_kind_refuses_an_unknown_field(app, client, kind):
    payload = {**VALID[kind], 'x': 1}
    body = assert_error(client.post(f'/jobs/{kind}', json=payload), 400, '/x')
    assert [e['path'] for e in body['errors']] == ['/x']
    assert stored_jobs(app) == []


# --- retry --------------------------------------------------------------------------------

def test_retry_of_a_queued_job_is_409(app, client):
    job_id = client.post('/jobs/genre.create', json=GENRE).get_json()['id']
    body = assert_error(client.post(f'/jobs/{job_id}/retry'), 409)
    assert 'queued' in body['message']
    assert stored_jobs(app)[0]['status'] == 'queued'


@pytest.mark.parametrize('password', ['Tiny-pw', 12345678], ids=['too-short', 'not-a-string'])
def test_a_refused_password_is_not_quoted_back(client, password):
    payload = {'username': 'ann', 'email': 'ann@example.com', 'password': password}
    body = assert_error(client.post('/jobs/user.create', json=payload), 400)
    assert body['errors'][0]['path'] == '/password'
    assert str(password) not in json.dumps(body)


def test_a_group_commit_connection_lost_while_idle_costs_no_request(app, client):
    """The group commit's connections skip the pool's ping: one found dead
    (a database restart, an idle timeout) is replaced, and the POST succeeds."""
    assert client.post('/jobs/genre.create', json=GENRE).status_code == 202
    kill_client_backends()
    response = client.post('/jobs/genre.create', json=GENRE)
    assert response.status_code == 202, response.get_json()


def test_a_polled_job_is_read_in_one_statement_of_its_own(app, client):
    # GET /jobs/<id>, what a client polls: no ORM query on the session's
    # connections, one statement committing itself on the reads' own.
    from sqlalchemy import event

    from ledger.reads import PUBLIC
    from web.reads import EXTENSION
    job_id = client.post('/jobs/genre.create', json=GENRE).get_json()['id']
    client.get(f'/jobs/{job_id}')  # a connection an earlier test killed is replaced
    engines = {'session': app.extensions['pg'].pool.connection().engine,
               'reads': app.extensions[EXTENSION]}
    seen = {name: [] for name in engines}
    listeners = {name: (lambda name: lambda conn, cursor, statement, *rest:
                        seen[name].append(statement))(name) for name in engines}
    for name, engine in engines.items():
        event.listen(engine, 'before_cursor_execute', listeners[name])
    try:
        answer = client.get(f'/jobs/{job_id}')
    finally:
        for name, engine in engines.items():
            event.remove(engine, 'before_cursor_execute', listeners[name])
    assert answer.status_code == 200 and answer.get_json()['status'] == 'queued'
    assert seen['session'] == []
    assert [statement.split('WHERE')[0] for statement in seen['reads']] == \
        [PUBLIC.text.split('WHERE')[0]]
    with engines['reads'].connect() as conn:
        assert conn.connection.dbapi_connection.autocommit


def test_a_reads_connection_lost_while_idle_costs_no_request(app, client):
    """The reads' connections skip the ping too: one found dead is replaced."""
    job_id = client.post('/jobs/genre.create', json=GENRE).get_json()['id']
    assert client.get(f'/jobs/{job_id}').status_code == 200
    kill_client_backends()
    assert client.get(f'/jobs/{job_id}').status_code == 200


def test_no_cookie_session_is_opened_even_with_a_secret_key(make_app):
    # The API keeps no session: with FLASK_SECRET_KEY set, Flask's own
    # interface signed and read a cookie session on every request.
    import flask
    app = make_app(FLASK_SECRET_KEY='s' * 40)
    seen = []
    app.before_request(lambda: seen.append(flask.session._get_current_object()))
    answer = app.test_client().get('/health', headers={'Cookie': 'session=forged'})
    assert answer.status_code == 200 and 'Set-Cookie' not in answer.headers
    assert seen and seen[0].__class__ is app.session_interface.null_session_class
