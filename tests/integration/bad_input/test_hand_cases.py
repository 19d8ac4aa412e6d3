"""Bad input written by hand (invalid UTF-8, nesting 10,000 deep, a body one
byte over the limit, huge numbers, wrong content types, an empty body, an
array for an object, payloads built to be slow), against the service app
in-process: no 5xx, every error in the envelope, each answered within a
second, and the status each deserves."""
import io
import json
import time
from urllib.parse import quote

import pytest

from tests.integration.bad_input.checks import (DEFAULT_LIMIT, MAX_SECONDS, SMALL_LIMIT,
                                                assert_status, post, post_streamed, send)
from tests.integration.bad_input.json_text import (GENRE, KINDS, STRING_FIELDS, VALID, deep,
                                                   dumps, sized, with_raw)


# --- hand cases: encodings ---------------------------------------------------------------------

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

@pytest.mark.parametrize('streamed', [False, True], ids=['content-length', 'chunked'])
@pytest.mark.parametrize('url', ['/jobs/genre.create', '/jobs/genre.create/batch'])
def test_one_byte_over_a_small_limit_is_413(small_client, url, streamed):
    over, at = sized(SMALL_LIMIT + 1), sized(SMALL_LIMIT)
    send_ = post_streamed if streamed else post
    assert_status(send_(small_client, url, over), 413)
    assert_status(send_(small_client, url, at), 400)     # read and refused by its schema
    assert_status(send_(small_client, url, b' ' * (SMALL_LIMIT + 1)), 413)


@pytest.mark.parametrize('streamed', [False, True], ids=['content-length', 'chunked'])
def test_one_byte_over_the_default_1mib_is_413(client, streamed):
    send_ = post_streamed if streamed else post
    assert_status(send_(client, '/jobs/genre.create', sized(DEFAULT_LIMIT + 1)), 413)
    assert_status(send_(client, '/jobs/genre.create', sized(DEFAULT_LIMIT)), 400)
    assert_status(send_(client, '/jobs/genre.create', b'{' + b' ' * (8 * DEFAULT_LIMIT)), 413)
    # A valid object followed by blanks past the limit is still too big.
    padded = json.dumps(GENRE).encode() + b' ' * DEFAULT_LIMIT
    assert_status(send_(client, '/jobs/genre.create', padded), 413)


def test_the_limit_is_checked_before_the_content_type(client):
    response = post(client, '/jobs/genre.create', b'x' * (DEFAULT_LIMIT + 1),
                    content_type='text/plain')
    assert_status(response, 413, 415)


# --- hand cases: numbers ----------------------------------------------------------------------

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
