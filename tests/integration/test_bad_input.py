"""Bad input: no 5xx, every error in the envelope, each answered within a second.

Requests generated with hypothesis (JSON values of every shape, wrong types
for each field of every kind, huge numbers, deep nesting, long strings,
\\u0000 and lone surrogates, random bytes, content types, kind names,
Idempotency-Keys, Authorization headers, query strings and batches) and
hand cases (invalid UTF-8, nesting 10,000 deep, a body one byte over the
limit, huge numbers, wrong content types, an empty body, an array for an
object, payloads built to be slow), all against the service app in-process
(Flask's test client) on the real test database and Redis db 13; a few hand
cases again over HTTP against the web process (gunicorn, from the Procfile).

No backend is made unreachable here, so no answer may be a 503 either.
"""
import io
import json
import operator
import os
import re
import string
import time
from collections import Counter
from unittest.mock import patch
from urllib.parse import quote, urlencode

import pytest
import redis
import requests
from hypothesis import HealthCheck, given, settings, strategies as st
from werkzeug.test import EnvironBuilder

from service import settings as service_settings
from tasks import REGISTRY, load_all
from tests.integration.jobs import VALID
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

KINDS = sorted(load_all())
FIELDS = {name: sorted(REGISTRY[name].schema['properties']) for name in KINDS}
STRING_FIELDS = [(name, field) for name in KINDS for field in FIELDS[name]
                 if REGISTRY[name].schema['properties'][field]['type'] == 'string']
ALL_FIELDS = sorted({field for fields in FIELDS.values() for field in fields})

# How many requests each generated test sent (the module's last test adds them up).
GENERATED = Counter()
GENERATED_TESTS = {'test_generated_jobs', 'test_generated_strings', 'test_generated_batches',
                   'test_generated_raw_bodies', 'test_generated_kind_names', 'test_generated_reads',
                   'test_generated_auth_and_idempotency_headers'}


def fuzz(examples):
    """Reproducible (derandomized, no example database) and without
    hypothesis' own deadline: the one second is checked per request."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    print_blob=False, suppress_health_check=[
                        HealthCheck.too_slow, HealthCheck.data_too_large,
                        HealthCheck.large_base_example, HealthCheck.filter_too_much])


# --- the app, the broker, the checks -----------------------------------------------------

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


@pytest.fixture(scope='module', autouse=True)
def broker():
    """An empty Redis database of this module's own for the messages."""
    client = redis.Redis.from_url(BROKER_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope='module')
def app(broker):
    return build_app()


@pytest.fixture(scope='module')
def client(app):
    return app.test_client()


@pytest.fixture(scope='module')
def small_client(broker):
    return build_app(FLASK_MAX_CONTENT_LENGTH=SMALL_LIMIT).test_client()


@pytest.fixture(scope='module')
def token_client(broker):
    return build_app(FLASK_API_TOKENS='t1,s3cret-token').test_client()


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


def with_raw(payload, field, raw):
    """The payload as JSON text, `field` holding the JSON text `raw` as is."""
    items = [f'{json.dumps(k)}: {json.dumps(v)}' for k, v in payload.items() if k != field]
    return ('{' + ', '.join([*items, f'{json.dumps(field)}: {raw}']) + '}').encode()


def deep(depth, shape='array', leaf='1'):
    opener, closer = {'array': ('[', ']'), 'object': ('{"a":', '}'),
                      'mixed': ('[{"a":', '}]')}[shape]
    return opener * depth + leaf + closer * depth


# --- strategies ----------------------------------------------------------------------------

EVERY_CHARACTER = st.characters(codec=None, exclude_categories=())  # NUL and lone surrogates too
SPECIAL_TEXT = ['', ' ', '\x00', 'a\x00b', '\ud800', '\udfff', 'x\udc00y', '\ud83c\udfb7',
                '\ud83c', '\ufeff', '\uffff', '\u2028', '\x1f', '@', 'a@b', 'null', '%00', '..',
                '\\u0000', '"', '\\', '<script>', "' OR 1=1 --", '\U0010ffff']
HUGE_INTS = [2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -2**31 - 1,
             -2**63 - 1, 10**100, 10**400, -10**400, int('9' * 4300)]
NUMBER_LITERALS = ['1e400', '-1e400', '1e-400', '1E999999999', '-0', '0e0', '-0.0', '1.0',
                   '1e308', '1.7976931348623157e309', '5e-324', '1' + '0' * 4299,
                   '1' + '0' * 4300, '9' * 20_000, '0.' + '0' * 5000 + '1', '1.' + '5' * 20_000,
                   '1e' + '9' * 5000, '2147483648', '9223372036854775808', '-9223372036854775809',
                   '01', '+1', '.5', '1.', '0x10', '1_000', 'NaN', 'Infinity', '-Infinity', 'nan']

# Short strings salted with what PostgreSQL, UTF-8 or JSON find hard.
TRICKY_CHARACTERS = ['\x00', '\ud800', '\udbff', '\udc00', '\udfff', '\ud83c', '\udfb7',
                     '\U0001f3b7', '\ufeff', '\uffff', '\ufffe', '\U0010ffff', '\u2028', '\x7f',
                     '\x1f', '\xe9', '\\', '"', '/', '~', 'a']
tricky_texts = st.lists(st.sampled_from(TRICKY_CHARACTERS) | EVERY_CHARACTER,
                        min_size=1, max_size=12).map(''.join)
texts = st.one_of(
    st.text(EVERY_CHARACTER, max_size=30),
    tricky_texts,
    st.text(max_size=300),
    st.builds(operator.mul, st.text(EVERY_CHARACTER, min_size=1, max_size=3),
              st.integers(0, 30_000)),   # long runs of a few characters
    st.sampled_from(SPECIAL_TEXT),
)
numbers = st.one_of(
    st.integers(),
    st.integers(-2**70, 2**70),
    st.sampled_from(HUGE_INTS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 5e-324, 1e15, 1e15 + 2, -1e15 - 2, -0.0, 0.5, 1.0, 2.0**31]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
keys = st.one_of(st.sampled_from(ALL_FIELDS), st.text(EVERY_CHARACTER, max_size=20),
                 st.sampled_from(SPECIAL_TEXT))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=25)


def dumps(document, how):
    """JSON text of a document as bytes: escaped ASCII, raw UTF-8 (a lone
    surrogate as its invalid UTF-8 form), pretty, or in UTF-16/32."""
    if how == 'ascii':
        return json.dumps(document).encode()
    if how.startswith(('utf-16', 'utf-32')):
        return json.dumps(document).encode(how)
    text = json.dumps(document, ensure_ascii=False, indent=2 if how == 'pretty' else None)
    return text.encode('utf-8', 'surrogatepass')


encodings = st.sampled_from(['ascii', 'ascii', 'raw', 'raw', 'pretty', 'utf-16', 'utf-16-le',
                             'utf-32'])


@st.composite
def payloads(draw, name):
    """A payload of kind `name`: its valid example with fields dropped,
    replaced by any JSON value, or unknown fields added (or left valid)."""
    payload = dict(VALID[name])
    for field in draw(st.lists(st.sampled_from(FIELDS[name]), unique=True)):
        if draw(st.booleans()):
            payload.pop(field, None)
        else:
            payload[field] = draw(json_values)
    payload.update(draw(st.dictionaries(keys, json_values, max_size=2)))
    return payload


@st.composite
def mutated(draw, data):
    """`data` with a few bytes deleted, replaced or inserted, or cut short."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(['delete', 'replace', 'insert', 'truncate']))
        byte = draw(st.integers(0, 255))
        if op == 'delete' and at < len(data):
            del data[at]
        elif op == 'replace' and at < len(data):
            data[at] = byte
        elif op == 'insert':
            data.insert(at, byte)
        elif op == 'truncate':
            del data[at:]
    return bytes(data)


@st.composite
def bodies(draw, name):
    """A body for POST /jobs/<name>: mostly a JSON object near the kind's schema."""
    way = draw(st.sampled_from(['payload', 'payload', 'payload', 'string', 'value', 'literal',
                                'deep', 'wide', 'mutated', 'bytes']))
    if way == 'payload':
        return dumps(draw(payloads(name)), draw(encodings))
    if way == 'string':     # valid but for what one string holds
        fields = [f for n, f in STRING_FIELDS if n == name] or FIELDS[name]
        payload = {**VALID[name], draw(st.sampled_from(fields)): draw(tricky_texts)}
        return dumps(payload, draw(encodings))
    if way == 'wide':       # up to 150,000 fields, unknown or not
        width = draw(st.integers(0, 150_000))
        payload = {**{str(i): 0 for i in range(width)}, **draw(payloads(name))}
        return dumps(payload, 'ascii')
    if way == 'value':
        return dumps(draw(json_values), draw(encodings))
    if way == 'literal':    # a raw number (or would-be number) in a field
        field = draw(st.sampled_from(FIELDS[name]))
        literal = draw(st.sampled_from(NUMBER_LITERALS) | st.from_regex(
            r'-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,6})?', fullmatch=True))
        return with_raw(VALID[name], field, literal)
    if way == 'deep':       # nested up to 20,000 deep, at the top or in a field
        depth = draw(st.integers(1, 20_000) | st.integers(900, 1100))
        nested = deep(depth, draw(st.sampled_from(['array', 'object', 'mixed'])),
                      draw(st.sampled_from(['1', '"x"', '[]', '{}', 'null', '"\\u0000"'])))
        if draw(st.booleans()):
            return nested.encode()
        return with_raw(VALID[name], draw(st.sampled_from(FIELDS[name])), nested)
    if way == 'mutated':
        return draw(mutated(dumps(draw(payloads(name)), 'raw')))
    return draw(st.binary(max_size=300))


@st.composite
def batches(draw, name):
    """A body for POST /jobs/<name>/batch: mostly an array of payloads,
    valid and not. Valid user.create items are at most one: each costs a
    0.3 s bcrypt hash (see test_a_batch_of_valid_user_creates_is_slow)."""
    way = draw(st.sampled_from(['items', 'items', 'items', 'many', 'value', 'mutated']))
    if way == 'items':
        items = draw(st.lists(st.one_of(payloads(name), json_values), max_size=8))
        if name == 'user.create':
            valid = [i for i, item in enumerate(items) if REGISTRY[name].validator.is_valid(item)]
            for i in valid[1:]:
                items[i] = {**items[i], 'password': 1}
        return dumps(items, draw(encodings))
    if way == 'many':       # up to past the batch limit, all alike (never all valid)
        item = draw(json_values)
        if REGISTRY[name].validator.is_valid(item):
            item = {**item, 'x': 1}
        return dumps([item] * draw(st.integers(0, 1200)), 'ascii')
    if way == 'value':
        return dumps(draw(json_values), draw(encodings))
    most = 1 if name == 'user.create' else 4
    return draw(mutated(dumps(draw(st.lists(payloads(name), max_size=most)), 'raw')))


header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xff,
                                    exclude_characters='\x7f'), max_size=300)
idempotency_keys = st.one_of(
    st.none(), header_text, st.text(string.printable.strip(), min_size=0, max_size=300),
    st.sampled_from(['', ' ', 'k', 'k' * 255, 'k' * 256, '\t', 'caf\xe9', 'a\x1fb']))
content_types = st.one_of(
    st.sampled_from([JSON, f'{JSON}; charset=utf-8', f'{JSON}; charset=latin-1',
                     'application/problem+json', 'application/json-patch+json', 'text/json',
                     'text/plain', 'text/html', 'application/xml',
                     'application/x-www-form-urlencoded', 'multipart/form-data',
                     'multipart/form-data; boundary=x', '*/*', 'application/*',
                     'application/jsonx', 'APPLICATION/JSON', ' application/json ', 'application',
                     '', ';', 'a/b; c', 'application/json;;;==', 'application/json; charset']),
    header_text,
)


# --- generated requests ------------------------------------------------------------------------

@fuzz(200)
@given(data=st.data())
def test_generated_jobs(client, data):
    name = data.draw(st.sampled_from(KINDS), label='kind')
    body = data.draw(bodies(name), label='body')
    key = data.draw(st.none() | idempotency_keys, label='Idempotency-Key')
    headers = {} if key is None else {'Idempotency-Key': key}
    post(client, f'/jobs/{name}', body, headers=headers, counter='test_generated_jobs')


@fuzz(80)
@given(name_field=st.sampled_from(STRING_FIELDS), text=tricky_texts, how=encodings,
       batch=st.booleans())
def test_generated_strings(client, name_field, text, how, batch):
    """A payload valid but for what one of its strings holds, in any encoding:
    never a 5xx, and a 400 when PostgreSQL could not store the string."""
    name, field = name_field
    payload = {**VALID[name], field: text.ljust(8, '.') if field == 'password' else text}
    url = f'/jobs/{name}/batch' if batch else f'/jobs/{name}'
    response = post(client, url, dumps([payload] if batch else payload, how),
                    counter='test_generated_strings')
    if re.search('[\x00\ud800-\udfff]', text):
        assert response.status_code == 400


@fuzz(120)
@given(data=st.data())
def test_generated_batches(client, data):
    name = data.draw(st.sampled_from(KINDS), label='kind')
    body = data.draw(batches(name), label='body')
    key = data.draw(st.none() | idempotency_keys, label='Idempotency-Key')
    headers = {} if key is None else {'Idempotency-Key': key}
    post(client, f'/jobs/{name}/batch', body, headers=headers, counter='test_generated_batches')


@fuzz(80)
@given(name=st.sampled_from(KINDS), batch=st.booleans(),
       content_type=st.one_of(st.just(JSON), st.none(), content_types),
       body=st.one_of(st.binary(max_size=500),
                      st.sampled_from(KINDS).flatmap(bodies),
                      st.builds(lambda n: b'x' * n, st.integers(0, 3 * SMALL_LIMIT)),
                      st.builds(lambda n: b'{' + b' ' * n + b'}',
                                st.integers(SMALL_LIMIT - 10, SMALL_LIMIT + 10))),
       streamed=st.booleans())
def test_generated_raw_bodies(small_client, name, batch, content_type, body, streamed):
    """Any bytes as any content type, on an app whose limit is SMALL_LIMIT,
    with a Content-Length or streamed (chunked)."""
    url = f'/jobs/{name}/batch' if batch else f'/jobs/{name}'
    send_ = post_streamed if streamed else post
    response = send_(small_client, url, body, content_type=content_type,
                     counter='test_generated_raw_bodies')
    if len(body) > SMALL_LIMIT and response.status_code != 415:
        assert response.status_code == 413


kind_names = st.one_of(
    st.text(max_size=80),
    st.text(EVERY_CHARACTER.filter(lambda c: not 0xd800 <= ord(c) <= 0xdfff), max_size=20),
    st.sampled_from(['..', '.', '...', '%00', '%2e%2e', '%2F', '%ff', '%ED%A0%80', '%C0%AF',
                     ' ', '%20', 'genre.create%00', 'genre.create/', 'genre.create/..',
                     '../genre.create', 'GENRE.CREATE', 'genre.create ', 'genre%2Ecreate',
                     'a' * 100_000, '%' * 1000, 'genre.create' * 10]),
    st.from_regex(r'(%[0-9A-Fa-f]{2}|[a-z./]){1,30}', fullmatch=True),
    st.integers(1, 200_000).map(lambda n: 'k' * n),
)


@fuzz(60)
@given(name=kind_names, quoted=st.booleans(), batch=st.booleans(), method=st.sampled_from(
    ['POST', 'POST', 'GET', 'PUT', 'DELETE', 'PATCH']), body=st.sampled_from(KINDS).flatmap(bodies))
def test_generated_kind_names(client, name, quoted, batch, method, body):
    """Any kind name, in any method: an unknown kind is a 404 (a method not served a 405)."""
    path = quote(name, safe='') if quoted else quote(name, safe='/%')
    url = f'/jobs/{path}/batch' if batch else f'/jobs/{path}'
    post_kwargs = {'data': body, 'content_type': JSON} if method != 'GET' else {}
    send(client, method, url, counter='test_generated_kind_names', **post_kwargs)


query_values = st.one_of(st.text(EVERY_CHARACTER, max_size=40),
                         st.builds(operator.mul, st.text(EVERY_CHARACTER, min_size=1, max_size=2),
                                   st.integers(0, 2000)),
                         st.sampled_from(['queued', 'failed', 'running', 'succeeded', '1', '1000',
                                          '1001', '0', '-1', '9' * 5000, 'genre.create']))
queries = st.one_of(
    st.dictionaries(st.sampled_from(['status', 'kind', 'limit']) | st.text(max_size=10),
                    query_values, max_size=4).map(
        lambda q: urlencode({k: v.encode('utf-8', 'surrogatepass') for k, v in q.items()})),
    st.text(string.ascii_letters + string.digits + '%&=+;?#[]/.-_~', max_size=200),
    st.from_regex(r'((status|kind|limit)=(%[0-9A-Fa-f]{2}|[a-z0-9]){0,12}&?){1,4}', fullmatch=True),
)
job_ids = st.one_of(st.integers(-2**70, 2**70).map(str), st.sampled_from(
    [str(2**63 - 1), str(2**63), str(2**64), '9' * 5000, '0', '-1', '1.5', '1e3', '0x10',
     '%00', '１', '²', ' 1', '1 ', '+1']), st.text(max_size=20).map(lambda t: quote(t, safe='')))


@fuzz(80)
@given(data=st.data())
def test_generated_reads(client, data):
    """GET /jobs with any query, GET /jobs/<id> and POST /jobs/<id>/retry with any id."""
    what = data.draw(st.sampled_from(['list', 'list', 'job', 'retry']), label='what')
    if what == 'list':
        send(client, 'GET', '/jobs?' + data.draw(queries, label='query'),
             counter='test_generated_reads')
    elif what == 'job':
        send(client, 'GET', '/jobs/' + data.draw(job_ids, label='id'),
             counter='test_generated_reads')
    else:
        send(client, 'POST', f'/jobs/{data.draw(job_ids, label="id")}/retry',
             counter='test_generated_reads')


authorizations = st.one_of(
    st.none(), header_text, st.sampled_from(
        ['Bearer t1', 'Bearer s3cret-token', 'bearer t1', 'Bearer t2', 'Bearer', 'Bearer ',
         'Basic dDE6dDE=', 'Bearer t1,s3cret-token', 'Bearer  t1', 'Bearer t1 t1',
         'Bearer \xe9', 'Bearer ' + 'x' * 10_000]),
    header_text.map(lambda t: 'Bearer ' + t))


@fuzz(60)
@given(authorization=authorizations, key=idempotency_keys,
       name=st.sampled_from(KINDS), batch=st.booleans(), valid=st.booleans())
def test_generated_auth_and_idempotency_headers(token_client, authorization, key, name, batch,
                                                valid):
    """An app with tokens: any Authorization header, any Idempotency-Key."""
    payload = VALID[name] if valid else {**VALID[name], 'x': 1}
    headers = {k: v for k, v in [('Authorization', authorization), ('Idempotency-Key', key)]
               if v is not None}
    url = f'/jobs/{name}/batch' if batch else f'/jobs/{name}'
    body = json.dumps([payload] if batch else payload)
    response = post(token_client, url, body, headers=headers,
                    counter='test_generated_auth_and_idempotency_headers')
    if response.status_code != 401:
        scheme, _, token = (authorization or '').partition(' ')
        assert scheme.lower() == 'bearer' and token.strip() in ('t1', 's3cret-token')


# --- hand cases: encodings ---------------------------------------------------------------------

GENRE = VALID['genre.create']


@pytest.mark.parametrize('data', [
    b'{"name": "\xff", "description": "x"}',
    b'{"name": "caf\xe9", "description": "x"}',                 # Latin-1
    b'{"name": "\xc0\xaf", "description": "x"}',                # overlong '/'
    b'{"name": "\xe2\x82", "description": "x"}',               # cut inside a character
    b'{"name": "x", "description": "x"}\xf0\x9f',               # cut at the end
    b'{"name": "\xed\xa0\x80", "description": "x"}',            # a surrogate, UTF-8-encoded
    b'{"name": "\xed\xa0\xbd\xed\xb2\xa9", "description": "x"}',  # a pair as CESU-8
    b'{"\xed\xb0\x80": 1, "name": "x", "description": "x"}',    # ... in a key
    b'{"name": "\xf4\x90\x80\x80", "description": "x"}',        # past U+10FFFF
    b'{"name": "\xf8\x88\x80\x80\x80", "description": "x"}',    # a 5-byte form
    b'\xfe\xff' + json.dumps(GENRE).encode('utf-16-be'),        # UTF-16 with its BOM
    json.dumps(GENRE).encode('utf-16-le'),
    json.dumps({'name': 'a\x00', 'description': 'x'}).encode('utf-16'),   # \\u0000 in UTF-16
    r'{"name": "a\ud800", "description": "x"}'.encode('utf-16'),          # lone surrogate too
    json.dumps(GENRE).encode('utf-32'),
    b'\x00' * 64,
], ids=['ff', 'latin-1', 'overlong', 'cut-inside', 'cut-at-end', 'surrogate-utf8',
        'cesu8-pair', 'surrogate-key', 'past-max', 'five-bytes', 'utf16-be', 'utf16-le',
        'utf16-nul-escape', 'utf16-surrogate-escape', 'utf32', 'nul-bytes'])
@pytest.mark.parametrize('batch', [False, True], ids=['single', 'batch'])
def test_invalid_utf8_is_400(client, data, batch):
    if batch:
        data = b'[' + data + b']' if not data.startswith((b'\xfe', b'\xff', b'{\x00')) else data
        response = post(client, '/jobs/genre.create/batch', data)
    else:
        response = post(client, '/jobs/genre.create', data)
    assert_status(response, 400)


def test_a_utf8_bom_is_ignored(client):
    assert_status(post(client, '/jobs/genre.create', b'\xef\xbb\xbf' + json.dumps(GENRE).encode()),
                  202)


@pytest.mark.parametrize('text', ['\x00', 'a\x00', '\ud800', '\udbff', '\udc00x', 'x\udfff'])
@pytest.mark.parametrize('where', ['value', 'key', 'batch'])
def test_unstorable_strings_as_escapes_are_400(client, text, where):
    if where == 'value':
        response = post(client, '/jobs/genre.create', json.dumps({**GENRE, 'name': text}))
    elif where == 'key':
        response = post(client, '/jobs/genre.create', json.dumps({**GENRE, text: 1}))
    else:
        response = post(client, '/jobs/genre.create/batch',
                        json.dumps([GENRE, {**GENRE, 'description': text}]))
    assert_status(response, 400)


# --- hand cases: nesting -----------------------------------------------------------------------

@pytest.mark.parametrize('shape', ['array', 'object', 'mixed'])
@pytest.mark.parametrize('depth', [10_000, 100_000])
@pytest.mark.parametrize('where', ['top', 'field', 'batch-item'])
def test_nesting_far_too_deep_is_400(client, shape, depth, where):
    nested = deep(depth, shape)
    if where == 'top':
        response = post(client, '/jobs/genre.create', nested)
    elif where == 'field':
        response = post(client, '/jobs/genre.create', with_raw(GENRE, 'name', nested))
    else:
        response = post(client, '/jobs/genre.create/batch', f'[{nested}]')
    assert_status(response, 400)


def test_nesting_around_the_recursion_limit_is_400(client):
    """Where the parser just gets through, what follows (validation, its
    messages) must get through too: every depth from 850 to 1050."""
    for depth in range(850, 1051):
        for shape in ['array', 'object']:
            nested = deep(depth, shape)
            assert_status(post(client, '/jobs/genre.create', nested), 400)
            assert_status(post(client, '/jobs/genre.create', with_raw(GENRE, 'name', nested)), 400)
            assert_status(post(client, '/jobs/genre.update', with_raw({'id': 1}, 'x', nested)), 400)
            assert_status(post(client, '/jobs/genre.create/batch', f'[{nested}]'), 400)


# --- hand cases: size -------------------------------------------------------------------------

def _sized(size):
    """A JSON object of exactly `size` bytes (an over-long description)."""
    head = json.dumps({**GENRE, 'description': ''}).encode()
    body = head[:-2] + b'x' * (size - len(head)) + b'"}'
    assert len(body) == size
    return body


@pytest.mark.parametrize('streamed', [False, True], ids=['content-length', 'chunked'])
@pytest.mark.parametrize('url', ['/jobs/genre.create', '/jobs/genre.create/batch'])
def test_one_byte_over_a_small_limit_is_413(small_client, url, streamed):
    over, at = _sized(SMALL_LIMIT + 1), _sized(SMALL_LIMIT)
    send_ = post_streamed if streamed else post
    assert_status(send_(small_client, url, over), 413)
    assert_status(send_(small_client, url, at), 400)     # read and refused by its schema
    assert_status(send_(small_client, url, b' ' * (SMALL_LIMIT + 1)), 413)


@pytest.mark.parametrize('streamed', [False, True], ids=['content-length', 'chunked'])
def test_one_byte_over_the_default_1mib_is_413(client, streamed):
    send_ = post_streamed if streamed else post
    assert_status(send_(client, '/jobs/genre.create', _sized(DEFAULT_LIMIT + 1)), 413)
    assert_status(send_(client, '/jobs/genre.create', _sized(DEFAULT_LIMIT)), 400)
    assert_status(send_(client, '/jobs/genre.create', b'{' + b' ' * (8 * DEFAULT_LIMIT)), 413)
    # A valid object followed by blanks past the limit is still too big.
    padded = json.dumps(GENRE).encode() + b' ' * DEFAULT_LIMIT
    assert_status(send_(client, '/jobs/genre.create', padded), 413)


def test_the_limit_is_checked_before_the_content_type(client):
    response = post(client, '/jobs/genre.create', b'x' * (DEFAULT_LIMIT + 1),
                    content_type='text/plain')
    assert_status(response, 413, 415)


# --- hand cases: numbers ----------------------------------------------------------------------

CREDIT = VALID['user.credit']


@pytest.mark.parametrize('kind, field, literal, expected', [
    ('user.credit', 'amount', '1e400', 400),                 # parsed as inf: over the maximum
    ('user.credit', 'amount', '-1e400', 400),
    ('user.credit', 'amount', '1E999999999', 400),
    ('user.credit', 'amount', '1e308', 400),
    ('user.credit', 'amount', '-1e308', 400),
    ('user.credit', 'amount', '1.7976931348623157e308', 400),
    ('user.credit', 'amount', '1e15', 202),                  # the maximum itself
    ('user.credit', 'amount', '1e-400', 202),                # underflows to 0.0
    ('user.credit', 'amount', str(10**1000), 400),
    ('user.credit', 'amount', '9' * 4300, 400),              # the most digits int() takes
    ('user.credit', 'amount', '9' * 4301, 400),              # one more: refused by the parser
    ('user.credit', 'amount', '9' * 100_000, 400),
    ('user.credit', 'amount', '1.' + '5' * 500_000, 202),    # 1.5555555555555556
    ('user.credit', 'amount', '0.' + '0' * 500_000 + '1', 202),
    ('user.credit', 'amount', 'NaN', 400),
    ('user.credit', 'amount', 'Infinity', 400),
    ('user.credit', 'user_id', str(2**31 - 1), 202),
    ('user.credit', 'user_id', str(2**31), 400),
    ('user.credit', 'user_id', str(2**63 - 1), 400),
    ('user.credit', 'user_id', str(2**63), 400),
    ('user.credit', 'user_id', str(2**64), 400),
    ('user.credit', 'user_id', str(-2**63 - 1), 400),
    ('user.credit', 'user_id', '1e400', 400),
    ('user.credit', 'user_id', '1.5', 400),
    ('user.credit', 'user_id', str(10**1000), 400),
    ('genre.update', 'id', str(2**63), 400),
    ('artist.create', 'genre_id', '9' * 4301, 400),
    ('album.create', 'artist_id', '-' + '9' * 4000, 400),
    ('genre.create', 'name', '1e400', 400),
    ('genre.create', 'name', str(10**1000), 400),
    ('user.create', 'password', '9' * 4300, 400),
], ids=lambda v: str(v) if len(str(v)) < 24 else f'{str(v)[:10]}...[{len(str(v))}]')
def test_huge_numbers(client, kind, field, literal, expected):
    assert_status(post(client, f'/jobs/{kind}', with_raw(VALID[kind], field, literal)), expected)
    if expected == 400:
        batch = b'[' + with_raw(VALID[kind], field, literal) + b']'
        assert_status(post(client, f'/jobs/{kind}/batch', batch), 400)


def test_many_integers_at_the_digit_limit_in_one_body_are_fast(client):
    """int() of a 4300-digit literal is quadratic: 240 of them fill 1 MiB."""
    many = ('[' + ', '.join(['9' * 4300] * 240) + ']').encode()
    assert len(many) < DEFAULT_LIMIT
    assert_status(post(client, '/jobs/user.credit/batch', many), 400)
    assert_status(post(client, '/jobs/user.credit', many), 400)


@pytest.mark.parametrize('url', [f'/jobs/{2**31}', f'/jobs/{2**63 - 1}', f'/jobs/{2**63}',
                                 f'/jobs/{2**64}', f'/jobs/{10**1000}', '/jobs/' + '9' * 100_000,
                                 '/jobs/-1', '/jobs/1.5', '/jobs/1e3'])
def test_huge_or_odd_job_ids_are_404(client, url):
    # Not a whole number, /jobs/<x> is no route (kinds match only their names): 404;
    # a request line past 4094 bytes is 414.
    long = len(url) > 4000
    assert_status(send(client, 'GET', url), 414 if long else 404)
    assert_status(send(client, 'POST', url + '/retry'), 414 if long else 404)


# --- hand cases: content types and empty bodies ---------------------------------------------

@pytest.mark.parametrize('content_type', [
    None, 'text/plain', 'text/html', 'application/xml', 'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x', 'application/octet-stream', '*/*', 'application/jsonx',
    'json', 'text/json', '', 'application/json'.replace('/', ''), 'x' * 10_000])
@pytest.mark.parametrize('url', ['/jobs/genre.create', '/jobs/genre.create/batch'])
def test_a_body_not_sent_as_json_is_415(client, content_type, url):
    body = json.dumps([GENRE] if url.endswith('batch') else GENRE)
    # A Content-Type header past 8190 bytes is refused for its size first (431).
    oversize = content_type is not None and len(content_type) > 8000
    assert_status(post(client, url, body, content_type=content_type), 431 if oversize else 415)


def test_a_multipart_upload_is_415(client):
    response = send(client, 'POST', '/jobs/genre.create',
                    data={'file': (io.BytesIO(json.dumps(GENRE).encode()), 'job.json')})
    assert_status(response, 415)


@pytest.mark.parametrize('content_type', ['application/problem+json', 'application/json-patch+json',
                                          'application/json; charset=utf-8',
                                          'application/json; charset=latin-1'])
def test_other_json_content_types_are_parsed_as_utf8_json(client, content_type):
    assert_status(post(client, '/jobs/genre.create', json.dumps(GENRE), content_type), 202)
    latin1 = json.dumps({**GENRE, 'name': 'caf\xe9'}, ensure_ascii=False).encode('latin-1')
    assert_status(post(client, '/jobs/genre.create', latin1, content_type), 400)


@pytest.mark.parametrize('data', [b'', b' ', b'\n\r\t ', b'\xef\xbb\xbf'])
@pytest.mark.parametrize('url', ['/jobs/genre.create', '/jobs/genre.create/batch'])
def test_an_empty_body_is_400(client, url, data):
    assert_status(post(client, url, data), 400)
    assert_status(post_streamed(client, url, data), 400)


def test_an_empty_body_without_a_content_type_is_415(client):
    assert_status(send(client, 'POST', '/jobs/genre.create'), 415)
    assert_status(send(client, 'POST', '/jobs/genre.create/batch'), 415)


# --- hand cases: the wrong shape --------------------------------------------------------------

@pytest.mark.parametrize('name', KINDS)
def test_an_array_where_an_object_is_expected_is_400(client, name):
    assert_status(post(client, f'/jobs/{name}', json.dumps([VALID[name]])), 400)
    assert_status(post(client, f'/jobs/{name}', json.dumps([])), 400)
    assert_status(post(client, f'/jobs/{name}/batch', json.dumps(VALID[name])), 400)
    body = assert_status(post(client, f'/jobs/{name}/batch', json.dumps([[VALID[name]]])),
                         400).get_json()
    assert body['errors'][0]['path'].startswith('/0')


# --- hand cases: payloads built to be slow --------------------------------------------------

@pytest.mark.parametrize('name, field', STRING_FIELDS, ids=[f'{n}-{f}' for n, f in STRING_FIELDS])
@pytest.mark.parametrize('text', [
    'a' * (DEFAULT_LIMIT - 200),          # a 1 MiB string
    'a@' * ((DEFAULT_LIMIT - 200) // 2),  # for the email format
    '\\u0000' * ((DEFAULT_LIMIT - 200) // 6),   # escapes, each one to look at
    '\\ud800' * ((DEFAULT_LIMIT - 200) // 6),
    '\\ud83c\\udfb7' * ((DEFAULT_LIMIT - 200) // 12),   # pairs, which are fine
    '\\u00e9' * ((DEFAULT_LIMIT - 200) // 6),
    '\\\\' * ((DEFAULT_LIMIT - 200) // 2),
], ids=['a', 'a@', 'nul-escapes', 'surrogate-escapes', 'pair-escapes', 'e-acute-escapes',
        'backslashes'])
def test_a_1mib_string_in_every_string_field_is_refused_fast(client, name, field, text):
    data = with_raw(VALID[name], field, f'"{text}"')
    assert len(data) <= DEFAULT_LIMIT
    assert_status(post(client, f'/jobs/{name}', data), 400)
    assert_status(post(client, f'/jobs/{name}/batch', b'[' + data + b']'), 400)


@pytest.mark.parametrize('name', sorted({n for n, _ in STRING_FIELDS}))
def test_long_runs_in_every_string_field_at_once(client, name):
    """Every string field up to 100,000 repeated characters long (as many as
    fit in the limit), for every kind."""
    fields = [f for n, f in STRING_FIELDS if n == name]
    for char in ['a', ' ', '@', '\x00', '\ud800', '\U0001f3b7', '.', '\\', '\xe9']:
        for ensure_ascii in [True, False]:
            width = len(dumps(char, 'ascii' if ensure_ascii else 'raw'))
            count = min(100_000, (DEFAULT_LIMIT - 500) // (width - 2) // len(fields))
            payload = {**VALID[name], **{field: char * count for field in fields}}
            data = dumps(payload, 'ascii' if ensure_ascii else 'raw')
            assert len(data) <= DEFAULT_LIMIT
            assert_status(post(client, f'/jobs/{name}', data), 400)


def test_100000_keys_within_the_limit_are_400(client):
    many = {str(i): 0 for i in range(100_000)}
    data = json.dumps(many, separators=(',', ':')).encode()
    assert len(data) < DEFAULT_LIMIT
    body = assert_status(post(client, '/jobs/genre.create', data), 400).get_json()
    assert 0 < len(body['errors']) <= 20
    assert_status(post(client, '/jobs/genre.create/batch', b'[' + data + b']'), 400)
    escaped = '{' + ','.join(f'"\\u0000{i}":0' for i in range(60_000)) + '}'
    assert len(escaped) < DEFAULT_LIMIT
    assert_status(post(client, '/jobs/genre.create', escaped), 400)
    same_key = b'{' + b','.join([b'"name":"x"'] * 90_000) + b',"description":"d","x":1}'
    assert_status(post(client, '/jobs/genre.create', same_key), 400)


def test_a_full_batch_of_bad_items_is_400_fast(client):
    batch = [{**GENRE, **{f'x{i}': i for i in range(50)}}] * 1000
    body = assert_status(post(client, '/jobs/genre.create/batch', json.dumps(batch)),
                         400).get_json()
    assert len(body['errors']) <= 20
    last_bad = [GENRE] * 999 + [{'name': 'x'}]
    assert_status(post(client, '/jobs/genre.create/batch', json.dumps(last_bad)), 400)
    assert_status(post(client, '/jobs/genre.create/batch', json.dumps([GENRE] * 1001)), 400)
    assert_status(post(client, '/jobs/genre.create/batch', json.dumps([0] * 200_000)), 400)


def test_a_batch_with_one_over_long_password_is_refused_fast(client):
    """Each password costs a 0.3 s bcrypt hash: a huge batch is refused by its
    size before any hashing, a full one names the item."""
    user = VALID['user.create']
    for bad in ['p' * 73, '\xe9' * 37]:
        batch = [user] * 999 + [{**user, 'password': bad}]
        assert_status(post(client, '/jobs/user.create/batch', json.dumps(batch)), 400)
        body = assert_status(post(client, '/jobs/user.create/batch',
                                  json.dumps([{**user, 'password': bad}])), 400).get_json()
        assert [e['path'] for e in body['errors']] == ['/0/password']


def test_a_batch_of_user_creates_is_capped_so_it_stays_fast(client):
    """Each valid user.create costs a bcrypt hash in the request: a batch of
    them is capped (kind batch_limit), so the answer stays fast either way."""
    users = [{**VALID['user.create'], 'username': f'u{i}'} for i in range(8)]
    start = time.monotonic()
    response = client.post('/jobs/user.create/batch', json=users)
    assert time.monotonic() - start < MAX_SECONDS
    assert_status(response, 400)
    assert 'at most 3' in response.json['message']
    start = time.monotonic()
    assert client.post('/jobs/user.create/batch', json=users[:3]).status_code == 202
    assert time.monotonic() - start < 3


@pytest.mark.parametrize('key', ['k' * 256, 'k' * DEFAULT_LIMIT, '\xe9' * 100, ' ' * 1000 + '\t'])
def test_a_huge_or_bad_idempotency_key_is_400(client, key):
    response = post(client, '/jobs/genre.create', json.dumps(GENRE),
                    headers={'Idempotency-Key': key})
    assert_status(response, 431 if len(key) > 8000 else 400)  # 431: a header past 8190 bytes


@pytest.mark.parametrize('query', [
    'limit=' + '9' * 100_000, 'kind=' + 'k' * 100_000, 'status=' + 'q' * 100_000,
    '&'.join(f'kind={i}' for i in range(20_000)), 'kind=%00' * 1000, '%' * 10_000,
    'limit=%ff%fe', 'kind=%ED%A0%80'])
def test_huge_queries_are_answered_fast(client, query):
    # 414: a request line past 4094 bytes
    expected = (414,) if len(quote('/jobs', safe='/') + '?' + query) > 4000 else (200, 400)
    assert send(client, 'GET', '/jobs?' + query).status_code in expected


# --- over HTTP -------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def web(broker, tmp_path_factory):
    """The web process alone (gunicorn, the Procfile's command) on the test
    database and broker db 13, with the default body limit; no worker."""
    import sys
    from cli.processes import Process
    from tests.e2e.service import free_port
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
    'over-the-limit': ('genre.create', _sized(DEFAULT_LIMIT + 1), JSON, False, 413),
    'over-the-limit-chunked': ('genre.create', _sized(DEFAULT_LIMIT + 1), JSON, True, 413),
    'far-over-the-limit': ('genre.create', b'{' + b' ' * (16 * DEFAULT_LIMIT), JSON, False, 413),
    'at-the-limit-chunked': ('genre.create', _sized(DEFAULT_LIMIT), JSON, True, 400),
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


# --- the count -------------------------------------------------------------------------------

def test_at_least_500_requests_were_generated():
    if set(GENERATED) != GENERATED_TESTS:
        pytest.skip('counted only when every generated test of the module runs')
    assert sum(GENERATED.values()) >= 500, GENERATED
    print(f'\n{sum(GENERATED.values())} generated requests: {dict(GENERATED)}')
