"""GET /openapi.json and GET /docs: the document is valid OpenAPI 3.1, covers
every route and every kind (with the kind's own schema), matches the bodies
the service really answers, and the docs page loads only the service's own
assets. In-process (Flask's test client), on the test database and Redis db 4."""
import json
import os
import re
from html.parser import HTMLParser

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from tasks.kinds import Kind
from tests.integration.service import service_fixtures
from tests.settings import redis_url
from web.auth import ENDPOINT_SCOPES
from web.body import storable_schema
from web.openapi import build_document

BROKER_URL = redis_url(4)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ERROR_CODES = {'400', '401', '403', '404', '409', '413', '414', '415', '422', '429', '431',
               '503'}
# Routes that are parts of /docs rather than API operations.
UNDOCUMENTED_ENDPOINTS = {'static', 'openapi.docs_asset', 'openapi.docs_initializer'}


def _kinds():
    from tasks import load_all
    return load_all()


broker, make_app, clean, app, client = service_fixtures(BROKER_URL)


@pytest.fixture
def document(client):
    response = client.get('/openapi.json')
    assert response.status_code == 200 and response.is_json
    return response.get_json()


def resolve(document, node):
    """`node` with its $ref (a local JSON pointer) followed, repeatedly."""
    while isinstance(node, dict) and '$ref' in node:
        assert node['$ref'].startswith('#/'), node
        pointer, node = node['$ref'], document
        for token in pointer[2:].split('/'):
            node = node[token.replace('~1', '/').replace('~0', '~')]
    return node


def body_schema(document, path, method='post'):
    content = document['paths'][path][method]['requestBody']['content']
    return resolve(document, content['application/json']['schema'])


def response_validator(document, path, method, status):
    """A validator of the JSON body the document promises for this answer
    (the whole document as the root, so its $refs resolve)."""
    response = resolve(document, document['paths'][path][method]['responses'][status])
    schema = response['content']['application/json']['schema']
    return Draft202012Validator({**document, **schema})


def openapi_path(rule):
    return re.sub(r'<(?:[^:<>]+:)?([^<>]+)>', r'{\1}', rule)


# --- the document -----------------------------------------------------------

def test_document_is_valid_openapi_3_1(document):
    assert document['openapi'] == '3.1.0'
    validate(document)


def test_every_kind_has_its_paths_with_its_own_schema(document):
    kinds = _kinds()
    assert kinds
    for name, kind in kinds.items():
        shown = json.loads(json.dumps(storable_schema(kind.schema)))
        assert body_schema(document, f'/jobs/{name}') == shown
        batch = body_schema(document, f'/jobs/{name}/batch')
        assert batch['type'] == 'array' and batch['minItems'] == 1
        assert resolve(document, batch['items']) == body_schema(document, f'/jobs/{name}')


def test_batch_size_is_the_effective_limit(make_app):
    kinds = _kinds()
    capped = {name for name, kind in kinds.items() if kind.batch_limit}
    assert capped, 'no kind with a batch limit of its own to check'
    for config_limit in (1000, 2):
        document = make_app(FLASK_BATCH_LIMIT=config_limit).test_client().get('/openapi.json').json
        for name, kind in kinds.items():
            expected = min(config_limit, kind.batch_limit or config_limit)
            assert body_schema(document, f'/jobs/{name}/batch')['maxItems'] == expected, name


def test_every_route_is_documented_and_every_path_is_a_route(app, document):
    kinds = sorted(_kinds())
    documented = {(path, method) for path, item in document['paths'].items() for method in item}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED_ENDPOINTS:
            continue
        path = openapi_path(rule.rule)
        paths = ([path.replace('{kind_name}', k) for k in kinds] if '{kind_name}' in path
                 else [path])
        for method in rule.methods - {'HEAD', 'OPTIONS'}:
            for p in paths:
                assert (p, method.lower()) in documented, f'{method} {p} is not documented'
    adapter = app.url_map.bind('localhost')
    for path, method in documented:
        endpoint, _ = adapter.match(path.replace('{job_id}', '1'), method=method.upper())
        assert endpoint not in UNDOCUMENTED_ENDPOINTS


def test_every_operation_has_its_error_answers_in_the_envelope(document):
    envelope = document['components']['schemas']['Error']
    assert set(envelope['required']) == {'code', 'message'}
    assert envelope['properties']['errors']['items']['required'] == ['path', 'message']
    seen = set()
    for path, item in document['paths'].items():
        for method, operation in item.items():
            for status, response in operation['responses'].items():
                if status in ERROR_CODES:
                    seen.add(status)
                    schema = resolve(document, response)['content']['application/json']['schema']
                    schema = resolve(document, schema)
                    assert schema is envelope or resolve(document, schema['allOf'][0]) is envelope
            if path.startswith('/jobs/') and method == 'post' and '{job_id}' not in path \
                    and path not in ('/jobs/cancel', '/jobs/retry'):  # the kinds' own
                assert {'400', '401', '403', '413', '415', '422', '429', '503'} <= set(
                    operation['responses']), path
                names = [resolve(document, p)['name'] for p in operation['parameters']]
                assert 'Idempotency-Key' in names, path
    assert seen == ERROR_CODES
    for name in ('Unavailable', 'TooManyRequests'):
        assert 'Retry-After' in document['components']['responses'][name]['headers']


def test_bearer_auth_is_declared_with_each_operations_scope_and_open_endpoints_open(document):
    scheme = document['components']['securitySchemes']['bearerAuth']
    assert {k: scheme[k] for k in ('type', 'scheme')} == {'type': 'http', 'scheme': 'bearer'}
    for scope in ('enqueue', 'read', 'admin'):
        assert f'`{scope}`' in scheme['description']
    assert document['security'] == [{'bearerAuth': []}]
    open_paths = {path for path, item in document['paths'].items()
                  for operation in item.values() if operation.get('security') == []}
    assert open_paths == {'/health', '/metrics', '/kinds', '/openapi.json', '/docs'}
    for path in open_paths:
        responses = set(document['paths'][path]['get']['responses'])
        assert not {'401', '403', '429'} & responses and {'414', '431'} <= responses
    assert '/health' in document['info']['description']
    scopes = {(path, method): operation['security']
              for path, item in document['paths'].items() for method, operation in item.items()
              if path not in open_paths}
    assert scopes[('/jobs/genre.create', 'post')] == [{'bearerAuth': ['enqueue']}]
    assert scopes[('/jobs/genre.create/batch', 'post')] == [{'bearerAuth': ['enqueue']}]
    assert scopes[('/jobs', 'get')] == [{'bearerAuth': ['read']}]
    assert scopes[('/jobs/{job_id}', 'get')] == [{'bearerAuth': ['read']}]
    assert scopes[('/jobs/{job_id}/retry', 'post')] == [{'bearerAuth': ['admin']}]
    assert {s[0]['bearerAuth'][0] for s in scopes.values()} == set(ENDPOINT_SCOPES.values())


def test_operation_ids_are_identifiers(document):
    ids = [operation['operationId'] for item in document['paths'].values()
           for operation in item.values()]
    assert len(ids) == len(set(ids))
    for operation_id in ids:
        assert operation_id.isidentifier(), operation_id


def test_allow_names_the_documented_methods_of_each_path(app, client, document):
    for path, item in document['paths'].items():
        response = client.options(path.replace('{job_id}', '7'))
        allowed = {m.strip().lower() for m in response.headers['Allow'].split(',')}
        assert allowed - {'head', 'options'} == set(item), path


@pytest.mark.parametrize('job_id', ['abc', 'genre', '-1', '1.5', '1e3', 'nope.kind'])
def test_a_job_id_that_is_not_a_number_is_404_in_the_envelope(client, document, job_id):
    response = client.get(f'/jobs/{job_id}')
    assert response.status_code == 404
    assert not list(response_validator(document, '/jobs/{job_id}', 'get', '404')
                    .iter_errors(response.get_json()))


def test_the_shown_schemas_refuse_what_postgresql_cannot_store(client, document):
    """What the kinds' schemas in the document accept, json_body accepts too:
    a NUL breaks the shown schema, and is a 400; an unpaired surrogate (not
    Unicode text) is a 400 the document's 400 names."""
    kinds = client.get('/kinds').get_json()['kinds']
    for bad in ('a\x00b', '\x00'):
        payload = {'name': bad, 'description': 'd'}
        for schema in (body_schema(document, '/jobs/genre.create'),
                       next(k['schema'] for k in kinds if k['name'] == 'genre.create')):
            assert not Draft202012Validator(schema).is_valid(payload)
    assert 'unpaired surrogate' in document['components']['responses']['BadRequest'][
        'description']
    for bad in ('a\x00b', 'a\ud800', '\udfff'):
        raw = json.dumps({'name': bad, 'description': 'd'})  # the escapes json_body looks for
        response = client.post('/jobs/genre.create', data=raw, content_type='application/json')
        assert response.status_code == 400, raw
    good = {'name': 'emoji \U0001F600 and \u00e9', 'description': 'line\nbreak'}
    assert Draft202012Validator(body_schema(document, '/jobs/genre.create')).is_valid(good)
    assert client.post('/jobs/genre.create', json=good).status_code == 202


def test_scopes_and_limits_answer_as_documented(make_app, clean, document):
    client = make_app(FLASK_API_TOKENS='reader-token:read,writer-token:enqueue+admin',
                      FLASK_RATE_LIMIT_READ='2/hour').test_client()

    def check(path, method, status, response):
        assert response.status_code == int(status), response.get_data(as_text=True)
        assert not list(response_validator(document, path, method, status)
                        .iter_errors(response.get_json()))
        return response

    reader = {'Authorization': 'Bearer reader-token'}
    writer = {'Authorization': 'Bearer writer-token'}
    body = {'name': 'jazz', 'description': 'swing'}
    check('/jobs/genre.create', 'post', '401', client.post('/jobs/genre.create', json=body))
    forbidden = check('/jobs/genre.create', 'post', '403',
                      client.post('/jobs/genre.create', json=body, headers=reader))
    assert 'enqueue' in forbidden.get_json()['message']
    created = check('/jobs/genre.create', 'post', '202',
                    client.post('/jobs/genre.create', json=body, headers=writer))
    job_id = created.get_json()['id']
    check('/jobs/{job_id}', 'get', '403', client.get(f'/jobs/{job_id}', headers=writer))
    check('/jobs/{job_id}/retry', 'post', '403', client.post(f'/jobs/{job_id}/retry',
                                                             headers=reader))
    check('/jobs/{job_id}/retry', 'post', '409', client.post(f'/jobs/{job_id}/retry',
                                                             headers=writer))
    check('/jobs/{job_id}', 'get', '200', client.get(f'/jobs/{job_id}', headers=reader))
    check('/jobs', 'get', '200', client.get('/jobs', headers=reader))
    limited = check('/jobs', 'get', '429', client.get('/jobs', headers=reader))
    assert 3000 < int(limited.headers['Retry-After']) <= 3601
    # The count is the token's and the scope's: the writer still enqueues.
    assert client.post('/jobs/genre.create', json=body, headers=writer).status_code == 202
    assert client.get('/kinds').status_code == 200  # open, as /openapi.json


def test_no_limiter_runs_where_there_is_nothing_to_limit(make_app):
    # Its hooks cost a sixth of a job's CPU in the web process, counting nothing.
    def limiter_hooks(app):
        hooks = [f for funcs in app.before_request_funcs.values() for f in funcs]
        return [f for f in hooks if 'flask_limiter' in getattr(f, '__module__', '')]
    for config in ({}, {'FLASK_API_TOKENS': 't:enqueue', 'FLASK_RATE_LIMIT_READ': '',
                        'FLASK_RATE_LIMIT_ENQUEUE': '', 'FLASK_RATE_LIMIT_ADMIN': ''}):
        app = make_app(**config)
        assert 'rate_limits' not in app.extensions and not limiter_hooks(app), config
        assert app.test_client().post('/jobs/genre.create', json={'name': 'a', 'description': 'b'},
                                      headers={'Authorization': 'Bearer t'}).status_code == 202
    limited = make_app(FLASK_API_TOKENS='t:enqueue')
    assert 'rate_limits' in limited.extensions and limiter_hooks(limited)


def test_oversize_request_lines_and_headers_are_414_and_431_in_the_envelope(client, document):
    def check(response, status):
        assert response.status_code == status, response.get_data(as_text=True)
        assert not list(response_validator(document, '/jobs', 'get', str(status))
                        .iter_errors(response.get_json()))
        assert response.headers['X-Request-ID']
    assert client.get('/jobs?kind=' + 'k' * 4000).status_code == 200
    check(client.get('/jobs?kind=' + 'k' * 4100), 414)
    check(client.get('/nothing/' + 'k' * 4100), 414)
    headers = {f'X-Extra-{n}': 'v' for n in range(95)}  # and the client's own (Host, ...)
    assert client.get('/jobs', headers=headers).status_code == 200
    check(client.get('/jobs', headers={**headers, **{f'X-More-{n}': 'v' for n in range(6)}}), 431)
    assert client.get('/jobs', headers={'X-Big': 'v' * 8000}).status_code == 200
    check(client.get('/jobs', headers={'X-Big': 'v' * 8190}), 431)


def test_gunicorn_limits_are_above_the_apps():
    import runpy

    from web import request_limits
    conf = runpy.run_path(os.path.join(ROOT, 'gunicorn.conf.py'))
    assert conf['limit_request_line'] == 8190 > 2 * request_limits.MAX_REQUEST_LINE
    assert conf['limit_request_fields'] == 2 * request_limits.MAX_HEADER_FIELDS
    assert conf['limit_request_field_size'] == 2 * request_limits.MAX_HEADER_FIELD_SIZE


def test_docs_and_document_need_no_token_when_tokens_are_set(make_app):
    client = make_app(FLASK_API_TOKENS='t1').test_client()
    assert client.get('/jobs').status_code == 401
    assert client.get('/kinds').status_code == 200
    assert client.get('/openapi.json').status_code == 200
    page = client.get('/docs')
    assert page.status_code == 200
    for url in local_assets(page.get_data(as_text=True)):
        assert client.get(url).status_code == 200, url


def test_the_document_describes_the_real_answers(app, client, document):
    def check(path, method, status, response):
        assert response.status_code == int(status), response.get_data(as_text=True)
        errors = list(response_validator(document, path, method, status)
                      .iter_errors(response.get_json()))
        assert not errors, (path, status, [e.message for e in errors])

    created = client.post('/jobs/genre.create', json={'name': 'jazz', 'description': 'swing'})
    check('/jobs/genre.create', 'post', '202', created)
    batch = client.post('/jobs/genre.create/batch', json=[{'name': 'a', 'description': 'b'}])
    check('/jobs/genre.create/batch', 'post', '202', batch)
    job_id = created.get_json()['id']
    check('/jobs/{job_id}', 'get', '200', client.get(f'/jobs/{job_id}'))
    check('/jobs', 'get', '200', client.get('/jobs?status=queued&kind=genre.create&limit=5'))
    check('/kinds', 'get', '200', client.get('/kinds'))
    check('/health', 'get', '200', client.get('/health'))
    invalid = client.post('/jobs/genre.create', json={'name': 'jazz', 'extra': 1})
    check('/jobs/genre.create', 'post', '400', invalid)
    assert invalid.get_json()['errors']
    check('/jobs/{job_id}', 'get', '404', client.get('/jobs/999999999'))
    check('/jobs/{job_id}/retry', 'post', '409', client.post(f'/jobs/{job_id}/retry'))
    check('/jobs/genre.create', 'post', '415',
          client.post('/jobs/genre.create', data='x', content_type='text/plain'))
    scheduled = client.post('/jobs/genre.create?delay=60', json={'name': 'a', 'description': 'b'})
    check('/jobs/genre.create', 'post', '202', scheduled)
    check('/jobs/genre.create/batch', 'post', '202', client.post(
        '/jobs/genre.create/batch?run_at=2030-01-01T00:00:00Z', json=[{'name': 'a', 'description': 'b'}]))
    check('/jobs/genre.create', 'post', '400',
          client.post('/jobs/genre.create?delay=soon', json={'name': 'a', 'description': 'b'}))
    cancelled = client.post(f'/jobs/{scheduled.get_json()["id"]}/cancel')
    check('/jobs/{job_id}/cancel', 'post', '200', cancelled)
    assert cancelled.get_json()['status'] == 'cancelled'
    check('/jobs/{job_id}/cancel', 'post', '409', client.post(f'/jobs/{scheduled.get_json()["id"]}/cancel'))
    check('/jobs/cancel', 'post', '200', client.post('/jobs/cancel?status=scheduled&kind=genre.create'))
    check('/jobs/cancel', 'post', '400', client.post('/jobs/cancel?status=running'))
    check('/jobs/retry', 'post', '200', client.post('/jobs/retry?status=cancelled&limit=1'))


@pytest.mark.parametrize('method, path', [
    ('post', '/jobs/genre.create?delay=60&delay=soon'),
    ('post', '/jobs/genre.create/batch?run_at=2030-01-01T00:00:00Z&run_at=x'),
    ('get', '/jobs?status=queued&status=failed'),
    ('post', '/jobs/cancel?kind=genre.create&kind=user.create'),
])
def test_a_query_parameter_given_twice_is_refused(client, method, path):
    # The document's parameters are single values: a second one would be
    # read past (only the first was), a schedule or a filter silently lost.
    body = {'name': 'a', 'description': 'b'}
    answer = getattr(client, method)(path, json=[body] if 'batch' in path else body) \
        if method == 'post' else client.get(path)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert 'given more than once' in answer.get_json()['message']


def test_a_kind_schema_with_its_own_refs_and_dialect_stays_valid():
    """$schema is kept (OpenAPI 3.1 takes 2020-12 as it is); "#/$defs/..."
    references are rebased to where the schema sits in the document."""
    schema = {
        '$schema': 'https://json-schema.org/draft/2020-12/schema',
        '$defs': {'name': {'type': 'string', 'minLength': 1}},
        'type': 'object',
        'properties': {'name': {'$ref': '#/$defs/name'}, 'tag': {'const': {'$ref': '#/data'}}},
        'additionalProperties': False,
    }
    kind = Kind(name='thing.create', schema=schema, handler=None, batch_limit=7,
                description='Make a thing.')
    document = build_document([kind], batch_limit=1000)
    validate(document)
    embedded = body_schema(document, '/jobs/thing.create')
    rebased = '#/components/schemas/thing.create/$defs/name'
    assert embedded['properties']['name'] == {'$ref': rebased}
    assert resolve(document, embedded['properties']['name']) == storable_schema(
        schema['$defs']['name'])
    assert embedded['properties']['tag'] == {'const': {'$ref': '#/data'}}  # data, not a reference
    assert schema['properties']['name'] == {'$ref': '#/$defs/name'}  # the kind's own is untouched
    assert body_schema(document, '/jobs/thing.create/batch')['maxItems'] == 7


# --- the docs page ----------------------------------------------------------

class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls, self.inline_scripts = [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'script':
            if attrs.get('src'):
                self.urls.append(attrs['src'])
            else:
                self.inline_scripts += 1
        elif tag == 'link' and attrs.get('href'):
            self.urls.append(attrs['href'])


def local_assets(html):
    """The URLs of the page's scripts and links, each checked to be the service's own."""
    parser = _Assets()
    parser.feed(html)
    assert parser.urls and parser.inline_scripts == 0
    for url in parser.urls:
        assert url.startswith('/') and not url.startswith('//'), f'{url} is not local'
    return parser.urls


def test_docs_page_loads_only_local_assets(client):
    page = client.get('/docs')
    assert page.status_code == 200 and page.mimetype == 'text/html'
    html = page.get_data(as_text=True)
    urls = local_assets(html)
    assert any(u.endswith('.js') for u in urls) and any(u.endswith('.css') for u in urls)
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200 and response.get_data(), url
        if url.endswith('.js'):
            assert 'javascript' in response.mimetype, url
            if 'initializer' in url:
                assert '"/openapi.json"' in response.get_data(as_text=True)
        elif url.endswith('.css'):
            assert response.mimetype == 'text/css', url
    # The kinds come from the document at run time, not from the page.
    for name in _kinds():
        assert name not in html


def test_docs_assets_stay_inside_their_directory(client):
    assert client.get('/docs/assets/../../openapi.py').status_code == 404
    assert client.get('/docs/assets/%2e%2e/__init__.py').status_code == 404
    assert client.get('/docs/assets/nothing.js').status_code == 404
