"""X-Request-ID: every request gets an id, the client's own when it sends a
valid one (1-128 printable ASCII characters), else a new one (uuid4 hex). It
is in flask.g.request_id for the logs and the jobs the request records, and
every answer, errors included, carries it back in the same header."""
import re
import uuid

from flask import g, request

HEADER = 'X-Request-ID'
ENVIRON_KEY = 'HTTP_X_REQUEST_ID'
VALID = re.compile('[\x20-\x7e]{1,128}')


def of_environ(environ):
    """The id a request gets: the client's own when valid, else a new one."""
    given = environ.get(ENVIRON_KEY)  # what request.headers reads, sooner
    return given if given is not None and VALID.fullmatch(given) else uuid.uuid4().hex


def current():
    """The request id of the current request (made now if it has none yet)."""
    request_id = g.get('request_id')
    if request_id is None:
        request_id = g.request_id = of_environ(request.environ)
    return request_id


def _assign():
    current()  # a before_request hook that returns something would be the answer


def _echo(response):
    response.headers[HEADER] = current()
    return response


def init_request_id(app):
    # First of the before_request hooks, so a request refused by another one has its id.
    app.before_request_funcs.setdefault(None, []).insert(0, _assign)
    app.after_request(_echo)
