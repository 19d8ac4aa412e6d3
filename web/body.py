"""The strict reading of a request's JSON body: JSON sent as JSON, within
the size limit, UTF-8, parsed without NaN or Infinity, and holding nothing
PostgreSQL cannot store."""
import json
import re

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from web.errors import ApiError
from web.json_pointer import pointer

MAX_MESSAGE = 300


def _refuse_constant(name):
    raise ValueError(f'{name} is not valid JSON')


# What PostgreSQL cannot store in jsonb/text: NUL, and (escaped) unpaired surrogates.
UNSTORABLE = re.compile('[\x00\ud800-\udfff]')
ESCAPED_UNSTORABLE = re.compile(r'\\u(0000|[dD][89a-fA-F])')


# NUL as a JSON Schema pattern, for the schemas the API shows (/openapi.json,
# /kinds): ECMA-262, Python's re and Rust's regex read it alike. An unpaired
# surrogate is not Unicode text, which JSON Schema strings are; no portable
# pattern names it (Rust's regex refuses surrogate escapes, so tools built on
# it would drop the whole pattern): the document says it in its 400 instead.
STORABLE_PATTERN = r'^[^\u0000]*$'
DATA_KEYWORDS = {'const', 'enum', 'default', 'examples', 'example'}


def storable_schema(schema):
    """A copy of a kind's schema in which no string may hold NUL (the
    STORABLE_PATTERN on each schema of type string, and on property names
    where any are allowed): the schema as the API shows it, so a client (or a
    contract tester) that follows it never meets the 400 json_body answers
    for a string PostgreSQL cannot store."""
    def walk(node):
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: value if key in DATA_KEYWORDS else walk(value) for key, value in node.items()}
        types = out.get('type')
        types = types if isinstance(types, list) else [types]
        if 'string' in types:
            if 'pattern' in out:
                out['allOf'] = [*out.get('allOf', []), {'pattern': STORABLE_PATTERN}]
            else:
                out['pattern'] = STORABLE_PATTERN
        if 'object' in types and out.get('additionalProperties') is not False:
            out.setdefault('propertyNames', {'pattern': STORABLE_PATTERN})
        return out
    return walk(schema)


def _unstorable_string(document):
    """The JSON pointer of the first string (key or value) PostgreSQL cannot
    store, or None. Iterative: the document may be nested close to the limit."""
    stack = [(document, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if UNSTORABLE.search(value):
                return pointer(*path)
        elif isinstance(value, dict):
            for key, item in value.items():
                if UNSTORABLE.search(key):
                    return pointer(*path, key)
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
    return None


def _streamed_past_the_limit(raw):
    """Whether a body sent without Content-Length (chunked) went on past
    MAX_CONTENT_LENGTH: werkzeug then hands over the first MAX_CONTENT_LENGTH
    bytes without an error, so one byte more is looked for here."""
    if request.content_length is not None:  # most requests: werkzeug held them to the limit
        return False
    limit = request.max_content_length
    return limit is not None and len(raw) >= limit and bool(request.environ['wsgi.input'].read(1))


def json_body():
    """The request's JSON document. 415 unless sent as JSON, 413 past
    FLASK_MAX_CONTENT_LENGTH, 400 unless it is UTF-8 and parses."""
    if not request.is_json:
        raise ApiError(415, 'send the body as application/json')
    raw = request.get_data(cache=False)
    if _streamed_past_the_limit(raw):
        raise RequestEntityTooLarge()
    return parse(raw)


def parse(raw):
    """The JSON document of a body's bytes, read strictly: 400 unless it is
    UTF-8 and parses, and holds nothing PostgreSQL cannot store."""
    # JSON is UTF-8 (RFC 8259 8.1; a leading BOM is ignored). Decoded here, strictly:
    # json.loads(bytes) would also take UTF-16/32, whose escapes the check below
    # cannot see, and UTF-8-encoded surrogates (it decodes with 'surrogatepass').
    try:
        text = raw.decode('utf-8-sig')
    except UnicodeDecodeError as error:
        raise ApiError(400, f'the body is not valid UTF-8: {error.reason} '
                            f'at byte {error.start}') from None
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ApiError(400, 'the body is nested too deeply') from None
    except ValueError as error:
        raise ApiError(400, f'the body is not valid JSON: {str(error)[:MAX_MESSAGE]}') from None
    # Raw NUL and surrogates cannot reach here (json, strict UTF-8 refuse them): only escapes can.
    path = _unstorable_string(document) if ESCAPED_UNSTORABLE.search(text) else None
    if path is not None:
        message = 'a string holds \\u0000 or an unpaired surrogate, which cannot be stored'
        raise ApiError(400, f'{path[:MAX_MESSAGE]} {message}',
                       errors=[{'path': path[:MAX_MESSAGE], 'message': message}])
    return document
