"""The sizes of a request's line and headers the API takes, answered in the
envelope: 414 for a request line (method, target, protocol) longer than
MAX_REQUEST_LINE bytes, 431 for more than MAX_HEADER_FIELDS header fields or
one longer than MAX_HEADER_FIELD_SIZE.

gunicorn parses the request before the app sees it and answers past its own
limits itself, in HTML; gunicorn.conf.py sets them to twice these (its
request line at its largest finite limit, 8190), so only a request past
those meets gunicorn's own answer (tests/unit/test_request_limits.py)."""
from urllib.parse import quote

from flask import request

from web.errors import ApiError

MAX_REQUEST_LINE = 4094  # gunicorn's own default limits, now answered by the app
MAX_HEADER_FIELDS = 100
MAX_HEADER_FIELD_SIZE = 8190
# What WSGI gives outside HTTP_*: the two header fields it names on their own.
PLAIN_HEADERS = {'CONTENT_TYPE': 'Content-Type', 'CONTENT_LENGTH': 'Content-Length'}


def _request_line(environ):
    target = environ.get('RAW_URI')  # gunicorn's: the target as sent
    if target is None:
        query = environ.get('QUERY_STRING')
        target = quote(environ.get('PATH_INFO', '')) + (f'?{query}' if query else '')
    return f'{environ.get("REQUEST_METHOD", "")} {target} {environ.get("SERVER_PROTOCOL", "")}'


def _header_fields(environ):
    """[(name, value)] of the request's header fields. A list built in one
    comprehension: it runs on every request."""
    return [(key[5:], value) if key[:5] == 'HTTP_' else (PLAIN_HEADERS[key], value)
            for key, value in environ.items() if key[:5] == 'HTTP_' or key in PLAIN_HEADERS]


def size_error(environ):
    """The ApiError (414, 431) of an oversize request, or None."""
    if len(_request_line(environ)) > MAX_REQUEST_LINE:
        return ApiError(414, f'the request line is longer than {MAX_REQUEST_LINE} bytes')
    fields = _header_fields(environ)
    if len(fields) > MAX_HEADER_FIELDS:
        return ApiError(431, f'more than {MAX_HEADER_FIELDS} header fields')
    for name, value in fields:
        # "Name: value", as gunicorn measures a field line
        if len(name) + 2 + len(value) > MAX_HEADER_FIELD_SIZE:
            return ApiError(431, f'a header field ({name.replace("_", "-").title()[:64]}) is '
                                 f'longer than {MAX_HEADER_FIELD_SIZE} bytes')
    return None


def check_request_size():
    """before_request hook: 414 or 431 in the envelope for an oversize request."""
    error = size_error(request.environ)
    if error is not None:
        raise error


def init_request_limits(app):
    # After the request id (first of all), before the token check.
    app.before_request(check_request_size)
