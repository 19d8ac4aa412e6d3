"""The hot paths, answered in front of Flask: the plain single-job POST
/jobs/<kind> and the polled GET /jobs/<id>.

Each is answered here as Flask would answer it, without Flask's request
machinery (request and response objects, routing, contexts, hooks,
signals), which was most of the web's CPU for a 202 and for a poll: the one
web process is what limits the single-job throughput.

Plain means, for the POST: a known kind without `prepare`, an
`application/json` body with its Content-Length within
FLASK_MAX_CONTENT_LENGTH, no query string, no Idempotency-Key; for the GET:
an id of ASCII digits (no leading zero) within MAX_JOB_ID, no query string;
for both: at the root path, not in debug mode.

The same checks run, through the same functions (request size, bearer token
and scope, strict JSON, the kind's schema), and the job joins the group
commit as create_job's does. The scope's rate limit is counted in
flask-limiter's own counts (web/rate_limits.py): a poll's on its own, a
POST's by its group's flush, with the group's other POSTs of the same token.
A request that is not plain, that fails a check or is past its limit goes
to Flask untouched (a POST's body handed back as read), and Flask gives the
answer. If the group commit or the read fails, that error is raised inside
Flask's handling (ERROR), so that answer is Flask's too.
"""
import io
import re

from flask import request

from ledger import MAX_JOB_ID
from service.logs import job_request_id
from tasks import REGISTRY
from web import rate_limits, request_id
from web.auth import bearer, endpoint_scope
from web.body import parse
from web.errors import ApiError
from web.group_commit import EXTENSION as GROUP_COMMIT
from web.jobs import accepted_body
from web.json_response import encode
from web.payloads import validation_errors
from web.reads import public_job
from web.request_limits import size_error

PREFIX = '/jobs/'
POST_ENDPOINT, GET_ENDPOINT = 'jobs.create_job', 'jobs.get_job'
ERROR = 'web.fast_paths.error'  # environ: the group commit's or read's error, for Flask to raise
ACCEPTED, OK = '202 ACCEPTED', '200 OK'
JOB_PATH = re.compile(r'/jobs/([1-9][0-9]{0,18})')  # [0-9]: str.isdigit takes other digits


class FastPaths:
    """WSGI middleware: `app.wsgi_app = FastPaths(app, app.wsgi_app)`, once
    the app is complete (its routes, auth and rate limits)."""

    def __init__(self, app, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app
        self.tokens = app.extensions['api_tokens']
        self.scopes = {'POST': endpoint_scope(POST_ENDPOINT), 'GET': endpoint_scope(GET_ENDPOINT)}
        app.before_request_funcs.setdefault(None, []).insert(1, _raise_error)

    def __call__(self, environ, start_response):
        method = environ.get('REQUEST_METHOD')
        if (method not in self.scopes or environ.get('QUERY_STRING')
                or environ.get('SCRIPT_NAME') or self.app.debug):
            return self.wsgi_app(environ, start_response)
        answer = self._post(environ) if method == 'POST' else self._get(environ)
        if answer is None:
            return self.wsgi_app(environ, start_response)
        status, headers, body = answer
        start_response(status, [('Content-Type', 'application/json'),
                                ('Content-Length', str(len(body))), *headers])
        return [body]

    def _quota(self, environ, method):
        """What the request counts against: (token fingerprint, scope), or
        None with no tokens; False when its size, token or scope does not
        pass, for Flask to answer."""
        if size_error(environ) is not None:
            return False
        if not self.tokens:
            return None
        found = bearer(self.tokens, environ.get('HTTP_AUTHORIZATION', ''))
        scope = self.scopes[method]
        return (found[1], scope) if found is not None and scope in found[0] else False

    def _post(self, environ):
        kind = self._plain_kind(environ)
        quota = False if kind is None else self._quota(environ, 'POST')
        if quota is False:
            return None
        group_commit = self.app.extensions[GROUP_COMMIT]
        with group_commit.arriving():
            taken = self._record(kind, environ, group_commit, quota)
        if taken is None:
            return None
        job_id, job_request = taken
        document = accepted_body(job_id, kind.name)  # at the root path: no SCRIPT_NAME
        return ACCEPTED, [('Location', document['status_url']),
                          (request_id.HEADER, job_request)], encode(document)

    def _plain_kind(self, environ):
        """The kind of a plain single-job POST, or None."""
        path = environ.get('PATH_INFO', '')
        if (not path.startswith(PREFIX) or 'HTTP_IDEMPOTENCY_KEY' in environ
                or environ.get('CONTENT_TYPE') != 'application/json'):
            return None
        kind = REGISTRY.get(path[len(PREFIX):])
        length = environ.get('CONTENT_LENGTH', '')
        limit = self.app.config.get('MAX_CONTENT_LENGTH')
        if (kind is None or kind.prepare or not (length.isascii() and length.isdigit())
                or (limit is not None and int(length) > limit)):
            return None
        return kind

    def _record(self, kind, environ, group_commit, quota):
        """(job id, request id) of the request's job, once counted against
        its `quota`, committed and published; None for Flask to answer (the
        body handed back as read)."""
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
        # Counted by the group's flush (web/group_commit.py): Flask's limiter
        # is not to count it again, unless it is past the limit.
        environ[rate_limits.COUNTED] = True
        try:
            with self.app.app_context():
                return group_commit.submit(kind.name, payload, job_request, quota), job_request
        except rate_limits.OverLimit:
            del environ[rate_limits.COUNTED]
            return None
        except Exception as error:  # noqa: BLE001 - Flask answers it, as create_job's
            _hand_over(environ, error, job_request)
            return None
        finally:
            job_request_id.reset(token)

    def _get(self, environ):
        path = JOB_PATH.fullmatch(environ.get('PATH_INFO', ''))
        job_id = int(path[1]) if path else 0
        quota = self._quota(environ, 'GET') if 0 < job_id <= MAX_JOB_ID else False
        if quota is False or not rate_limits.admitted(self.app, [quota])[0]:
            return None
        environ[rate_limits.COUNTED] = True
        job_request = request_id.of_environ(environ)
        try:
            with self.app.app_context():
                job = public_job(job_id)
            body = None if job is None else encode(job)
        except TypeError:  # a value orjson leaves to Flask's provider
            return None
        except Exception as error:  # noqa: BLE001 - Flask answers it, as get_job's
            _hand_over(environ, error, job_request)
            return None
        if body is None:  # no such job: Flask's 404
            return None
        return OK, [(request_id.HEADER, job_request)], body


def _hand_over(environ, error, job_request):
    """Have Flask answer `error` for this request, with the request id it had."""
    environ[ERROR] = error
    environ[request_id.ENVIRON_KEY] = job_request


def _raise_error():
    """before_request hook, after the request id's: the group commit's or the
    read's error of a request a hot path took, raised for Flask's error handlers."""
    error = request.environ.pop(ERROR, None)
    if error is not None:
        raise error


def init_fast_paths(app):
    app.wsgi_app = FastPaths(app, app.wsgi_app)
