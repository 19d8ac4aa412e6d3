"""The hot path of POST /jobs/<kind>, in front of Flask.

A plain single-job POST is answered here as Flask would answer it, without
Flask's request machinery (request and response objects, routing, contexts,
hooks, signals), which was most of the web's CPU for a 202: the one web
process is what limits the single-job throughput. Plain means: a known kind
without `prepare`, an `application/json` body with its Content-Length within
FLASK_MAX_CONTENT_LENGTH, no query string, no Idempotency-Key, no rate limit
on enqueue, at the root path, not in debug mode.

The same checks run, through the same functions (request size, bearer token
and scope, strict JSON, the kind's schema), and the job joins the group
commit as create_job's does. A request that is not plain, or that fails a
check, goes to Flask untouched (its body handed back as read), and Flask
gives the answer. If the group commit fails, that error is raised inside
Flask's handling (ERROR), so that answer is Flask's too.
"""
import io

from flask import request

from service.logs import job_request_id
from tasks import REGISTRY
from web import request_id
from web.auth import bearer, endpoint_scope
from web.body import parse
from web.errors import ApiError
from web.group_commit import EXTENSION as GROUP_COMMIT
from web.jobs import accepted_body
from web.json_response import encode
from web.payloads import validation_errors
from web.rate_limits import EXTENSION as RATE_LIMITS
from web.request_limits import size_error

PREFIX = '/jobs/'
ENDPOINT = 'jobs.create_job'
ERROR = 'web.fast_post.error'  # environ: the group commit's error, for Flask to raise
STATUS = '202 ACCEPTED'


class FastPost:
    """WSGI middleware: `app.wsgi_app = FastPost(app, app.wsgi_app)`, once
    the app is complete (its routes, auth and rate limits)."""

    def __init__(self, app, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app
        self.tokens = app.extensions['api_tokens']
        self.scope = endpoint_scope(ENDPOINT)
        self.limited = (app.extensions.get(RATE_LIMITS) is not None
                        and bool(app.config['FLASK_RATE_LIMIT_ENQUEUE']))
        app.before_request_funcs.setdefault(None, []).insert(1, _raise_error)

    def __call__(self, environ, start_response):
        kind = self._plain_kind(environ)
        if kind is None:
            return self.wsgi_app(environ, start_response)
        group_commit = self.app.extensions[GROUP_COMMIT]
        with group_commit.arriving():
            taken = self._record(kind, environ, group_commit)
        if taken is None:
            return self.wsgi_app(environ, start_response)
        job_id, job_request = taken
        document = accepted_body(job_id, kind.name)  # at the root path: no SCRIPT_NAME
        body = encode(document)
        start_response(STATUS, [('Content-Type', 'application/json'),
                                ('Content-Length', str(len(body))),
                                ('Location', document['status_url']),
                                (request_id.HEADER, job_request)])
        return [body]

    def _record(self, kind, environ, group_commit):
        """(job id, request id) of the request's job, once committed and
        published; None for Flask to answer (the body handed back as read)."""
        length = int(environ['CONTENT_LENGTH'])
        raw = environ['wsgi.input'].read(length)
        environ['wsgi.input'] = io.BytesIO(raw)
        if len(raw) != length:  # the client went away: Flask says so
            return None
        try:
            payload = parse(raw)
        except ApiError:
            return None
        if validation_errors(kind, payload):
            return None
        job_request = request_id.of_environ(environ)
        token = job_request_id.set(job_request)  # on the log lines meanwhile
        try:
            with self.app.app_context():
                return group_commit.submit(kind.name, payload, job_request), job_request
        except Exception as error:  # noqa: BLE001 - Flask answers it, as create_job's
            environ[ERROR] = error
            environ[request_id.ENVIRON_KEY] = job_request  # the id the job was given
            return None
        finally:
            job_request_id.reset(token)

    def _plain_kind(self, environ):
        """The kind of a plain single-job POST that passes the checks made
        before its body is read, or None."""
        path = environ.get('PATH_INFO', '')
        if (environ.get('REQUEST_METHOD') != 'POST' or not path.startswith(PREFIX)
                or environ.get('QUERY_STRING') or environ.get('SCRIPT_NAME')
                or 'HTTP_IDEMPOTENCY_KEY' in environ or self.limited or self.app.debug
                or environ.get('CONTENT_TYPE') != 'application/json'):
            return None
        kind = REGISTRY.get(path[len(PREFIX):])
        length = environ.get('CONTENT_LENGTH', '')
        limit = self.app.config.get('MAX_CONTENT_LENGTH')
        if (kind is None or kind.prepare or not (length.isascii() and length.isdigit())
                or (limit is not None and int(length) > limit)
                or size_error(environ) is not None):
            return None
        if self.tokens:
            found = bearer(self.tokens, environ.get('HTTP_AUTHORIZATION', ''))
            if found is None or self.scope not in found[0]:
                return None
        return kind


def _raise_error():
    """before_request hook, after the request id's: the group commit's error
    of a request the hot path took, raised for Flask's error handlers."""
    error = request.environ.pop(ERROR, None)
    if error is not None:
        raise error


def init_fast_post(app):
    app.wsgi_app = FastPost(app, app.wsgi_app)
