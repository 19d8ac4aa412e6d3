"""hypothesis strategies of bad requests: JSON values of every shape, wrong
types for each field of every kind, huge numbers, deep nesting, long
strings, \\u0000 and lone surrogates, random bytes, content types, kind
names, Idempotency-Keys, Authorization headers, query strings and batches."""
import operator
import string
from urllib.parse import quote, urlencode

from hypothesis import HealthCheck, settings, strategies as st

from tasks import REGISTRY
from tests.integration.bad_input.checks import JSON
from tests.integration.bad_input.json_text import (ALL_FIELDS, FIELDS, STRING_FIELDS, VALID,
                                                   deep, dumps, with_raw)


def fuzz(examples):
    """Reproducible (derandomized, no example database) and without
    hypothesis' own deadline: the one second is checked per request."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    print_blob=False, suppress_health_check=[
                        HealthCheck.too_slow, HealthCheck.data_too_large,
                        HealthCheck.large_base_example, HealthCheck.filter_too_much])


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


authorizations = st.one_of(
    st.none(), header_text, st.sampled_from(
        ['Bearer t1', 'Bearer s3cret-token', 'bearer t1', 'Bearer t2', 'Bearer', 'Bearer ',
         'Basic dDE6dDE=', 'Bearer t1,s3cret-token', 'Bearer  t1', 'Bearer t1 t1',
         'Bearer \xe9', 'Bearer ' + 'x' * 10_000]),
    header_text.map(lambda t: 'Bearer ' + t))
