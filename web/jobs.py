"""The jobs API: accept, record and enqueue jobs (now, or scheduled); read
them back; retry and cancel them, one or every one matching a filter."""
import base64
import binascii
import re
from datetime import datetime, timedelta, timezone

from flask import Blueprint, current_app, request
from rfc3339_validator import validate_rfc3339
from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter

import ledger
from service.queue import publish, publish_recorded, publish_retried
from tasks import REGISTRY
from web import idempotency, reads, request_id
from web.body import json_body, storable_schema
from web.errors import ApiError, envelope
from web.group_commit import EXTENSION as GROUP_COMMIT
from web.payloads import stored, summary, validation_errors

bp = Blueprint('jobs', __name__)


class KindConverter(BaseConverter):
    """The name of a registered kind, and nothing else: /jobs/<kind> and
    /jobs/<id> then never match the same path, so a path that is neither a
    kind nor a number is a 404 whatever the method, and OPTIONS's `Allow`
    names only the methods the document gives the path."""

    def __init__(self, url_map, *args, **kwargs):
        super().__init__(url_map, *args, **kwargs)
        # Longest first, so no name stops at another's prefix; (?!) matches nothing.
        names = sorted(REGISTRY, key=len, reverse=True)
        self.regex = '|'.join(re.escape(name) for name in names) or '(?!)'


# Before the routes: their rules are compiled as they are added.
bp.record_once(lambda state: state.app.url_map.converters.setdefault('kind', KindConverter))

JOBS_PATH = re.compile(r'/jobs/([^/]+)(/batch)?')


@bp.app_errorhandler(NotFound)
def not_found(error):
    """404 in the envelope; under /jobs/, saying what was not found."""
    path = JOBS_PATH.fullmatch(request.path) if request.url_rule is None else None
    if path and request.method == 'POST':
        message = f'unknown job kind {path[1][:64]!r}: GET /kinds lists them'
    elif path and not path[2]:
        message = f'no job {path[1][:64]!r}: a job id is a whole number'
    else:
        message = error.description
    return envelope(404, message)


def _kind(name):
    kind = REGISTRY.get(name)
    if kind is None:
        raise ApiError(404, f'unknown job kind {name[:64]!r}: GET /kinds lists them')
    return kind


def _session():
    return current_app.extensions['pg'].pool.connection().session


# The longest delay a job may be scheduled for (and a run_at as far ahead).
MAX_DELAY_SECONDS = 10 * 366 * 86400
# A JSON number, as the document types it (no NaN, no Infinity, no sign).
DELAY = re.compile(r'[0-9]{1,20}(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?')


def _instant(name, value):
    """An RFC 3339 date-time query parameter as an aware datetime; 400 otherwise."""
    if len(value) > 40 or not validate_rfc3339(value):
        raise ApiError(400, f'{name} is an RFC 3339 date-time, e.g. 2030-01-31T12:00:00Z')
    try:
        return datetime.fromisoformat(value.upper().replace('Z', '+00:00'))
    except ValueError:
        raise ApiError(400, f'{name} is not a date-time Python can hold') from None


SCHEDULE_PARAMETERS = {'run_at', 'delay'}


def _schedule():
    """(run_at, what the client asked) of ?run_at= (RFC 3339) and/or ?delay=
    (seconds from now; with both, the later of the two), or (None, None): the
    job runs at once. 400 for any other query parameter."""
    _known_parameters(SCHEDULE_PARAMETERS)
    run_at, delay = request.args.get('run_at'), request.args.get('delay')
    when = _instant('run_at', run_at) if run_at is not None else None
    if delay is not None:
        if not DELAY.fullmatch(delay) or float(delay) > MAX_DELAY_SECONDS:
            raise ApiError(400, f'delay is a number of seconds from 0 to {MAX_DELAY_SECONDS}')
        later = datetime.now(timezone.utc) + timedelta(seconds=float(delay))
        when = later if when is None else max(when, later)
    if when is None:
        return None, None
    asked = '&'.join(f'{name}={request.args[name]}' for name in sorted(SCHEDULE_PARAMETERS)
                     if name in request.args)
    return when, asked


def _enqueue(kind, payloads, stored_payloads, keys=None, run_at=None, asked=None):
    """Record the jobs (committed), then publish them (scheduled ones: beat
    does when they are due); return (ids, created).

    A request replayed with its Idempotency-Key records and publishes nothing."""
    session = _session()
    # A scheduled request's key covers its schedule too, as the client wrote it.
    digests = keys and [idempotency.digest(kind.name, p if asked is None else [p, asked])
                        for p in payloads]
    try:
        ids, created = ledger.record(session, kind.name, stored_payloads, scope=idempotency.scope(),
                                     keys=keys, digests=digests, request_id=request_id.current(),
                                     run_at=run_at,
                                     key_window=current_app.config['FLASK_IDEMPOTENCY_WINDOW_SECONDS'])
    except ledger.IdempotencyConflict:
        session.rollback()
        raise ApiError(422, f'{idempotency.HEADER} was already used with another request')
    session.commit()
    if created and run_at is None:
        try:
            publish_recorded({kind.name: ids})
        except Exception as error:
            if getattr(error, 'taken', None) != set(ids):
                raise
            # A worker took every job: their messages did reach the broker.
    return ids, created


def accepted_body(job_id, kind_name, status=ledger.Status.QUEUED, root=''):
    """The 202's body of one job (web/fast_paths.py's too); its status_url is
    the Location. What url_for('jobs.get_job') builds, for a fraction of its
    cost on the hot path."""
    return {'id': job_id, 'kind': kind_name, 'status': status,
            'status_url': f'{root}/jobs/{job_id}'}


def _accepted(job_id, kind_name, status=ledger.Status.QUEUED, run_at=None):
    body = accepted_body(job_id, kind_name, status, request.script_root)
    if run_at is not None:
        body['run_at'] = run_at.isoformat()
    return body, 202, {'Location': body['status_url']}


def _invalid(kind, errors, index=None):
    if index is None:
        return ApiError(400, f'invalid {kind.name} payload: {summary(errors)}', errors=errors)
    return ApiError(400, f'item {index} is not a valid {kind.name} payload: {summary(errors)}',
                    errors=errors)


@bp.post('/jobs/<kind:kind_name>')
def create_job(kind_name):
    group_commit = current_app.extensions[GROUP_COMMIT]
    with group_commit.arriving():
        kind = _kind(kind_name)
        payload = json_body()
        errors = validation_errors(kind, payload)
        if errors:
            raise _invalid(kind, errors)
        keys = idempotency.request_keys()
        run_at, asked = _schedule() if request.query_string else (None, None)
        kept = stored(kind, payload)
        if keys is None and run_at is None:
            # Without a key there is nothing to look up: the job joins the next group
            # commit, with no quota to count (flask-limiter counted the request).
            return _accepted(group_commit.submit(kind.name, kept, request_id.current(), None),
                             kind.name)
    [job_id], created = _enqueue(kind, [payload], [kept], keys, run_at, asked)
    if created:
        return _accepted(job_id, kind.name,
                         ledger.Status.QUEUED if run_at is None else ledger.Status.SCHEDULED,
                         run_at)
    job = _job(job_id)
    return _accepted(job_id, kind.name, job.status, job.run_at)


@bp.post('/jobs/<kind:kind_name>/batch')
def create_batch(kind_name):
    kind = _kind(kind_name)
    payloads = json_body()
    limit = kind.batch_cap(current_app.config['FLASK_BATCH_LIMIT'])
    if not isinstance(payloads, list) or not payloads:
        raise ApiError(400, 'a batch is a non-empty JSON array of payloads')
    if len(payloads) > limit:
        raise ApiError(400, f'a batch of {kind.name} holds at most {limit} jobs')
    for index, payload in enumerate(payloads):
        errors = validation_errors(kind, payload, prefix=(index,))
        if errors:
            raise _invalid(kind, errors, index)
    keys = idempotency.request_keys(len(payloads))
    run_at, asked = _schedule()
    kept = [stored(kind, p, prefix=(i,)) for i, p in enumerate(payloads)]
    ids, created = _enqueue(kind, payloads, kept, keys, run_at, asked)
    body = {'ids': ids}
    if run_at is not None and created:  # a replay's jobs keep the run_at of the first request
        body['run_at'] = run_at.isoformat()
    return body, 202


def _job(job_id, read=ledger.get):
    """The job `job_id` as `read` gives it; 404 when there is none."""
    job = read(job_id)
    if job is None:
        raise ApiError(404, f'no job {job_id}')
    return job


@bp.get('/jobs/<int:job_id>')
def get_job(job_id):
    return _job(job_id, reads.public_job)


LIST_PARAMETERS = {'status', 'kind', 'limit', 'cursor'}


def _cursor(before):
    """The opaque `next` of a listing: where the next page starts."""
    return base64.urlsafe_b64encode(f'v1:{before}'.encode()).decode().rstrip('=')


def _before(cursor):
    try:
        version, before = base64.urlsafe_b64decode(cursor + '=' * (-len(cursor) % 4)).decode(
            'ascii').split(':')
        if version == 'v1' and re.fullmatch('[0-9]{1,19}', before) and \
                0 < int(before) <= ledger.MAX_JOB_ID:
            return int(before)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ApiError(400, 'cursor is not one a listing gave (its next)')


@bp.get('/jobs')
def list_jobs():
    """Jobs newest first, filtered by ?status= and ?kind=, at most ?limit= (50)
    a page; `next` is the ?cursor= of the next page (null on the last)."""
    _known_parameters(LIST_PARAMETERS)
    status = request.args.get('status')
    if status is not None and status not in tuple(ledger.Status):
        raise ApiError(400, f'status is one of {", ".join(ledger.Status)}')
    kind = request.args.get('kind')
    if kind is not None and '\x00' in kind:
        raise ApiError(400, 'kind cannot contain NUL')
    limit = request.args.get('limit', '50')
    # ASCII digits only: '²' is a str.isdigit() but not an int().
    if not re.fullmatch('[0-9]{1,4}', limit) or not 1 <= int(limit) <= 1000:
        raise ApiError(400, 'limit is a whole number from 1 to 1000')
    cursor = request.args.get('cursor')
    before = None if cursor is None else _before(cursor[:100])
    jobs, after = ledger.listing(_session(), status=status, kind=kind and kind[:64],
                                 limit=int(limit), before=before)
    return {'jobs': [job.public() for job in jobs],
            'next': None if after is None else _cursor(after)}


@bp.post('/jobs/<int:job_id>/retry')
def retry_job(job_id):
    """Queue a failed or cancelled job again (its attempts counted afresh),
    its payload checked against its kind's schema; if the broker refuses, it
    stays as it was."""
    def still_valid(kind_name, payload):
        errors = validation_errors(_kind(kind_name), payload)
        if errors:
            raise ApiError(422, f'the payload of job {job_id} is no longer valid', errors=errors)
    try:
        retried = ledger.requeue_failed(_session(), job_id, check=still_valid)
    except ledger.JobNotFound:
        raise ApiError(404, f'no job {job_id}') from None
    except ledger.WrongStatus as error:
        raise ApiError(409, str(error)) from None
    publish_retried(retried)
    return _accepted(job_id, retried.kind)


@bp.post('/jobs/<int:job_id>/cancel')
def cancel_job(job_id):
    """Cancel a scheduled or queued job: it is never applied, even when its
    message is delivered later. A running or finished job: 409."""
    try:
        ledger.cancel(_session(), job_id)
    except ledger.JobNotFound:
        raise ApiError(404, f'no job {job_id}') from None
    except ledger.WrongStatus as error:
        raise ApiError(409, str(error)) from None
    return _job(job_id).public()


BULK_LIMIT = 10000


BULK_FILTERS = {'status', 'kind', 'created_before'}


def _known_parameters(known):
    """400 for a query parameter not in `known`: a misspelt filter would
    otherwise widen a listing or a bulk change to every job; and for one
    given twice, where only one of its values would be read."""
    unknown = set(request.args) - known
    if unknown:
        raise ApiError(400, f'unknown query parameter {sorted(unknown)[0][:64]!r}: '
                            f'{", ".join(sorted(known))} are')
    repeated = sorted(name for name, values in request.args.lists() if len(values) > 1)
    if repeated:
        raise ApiError(400, f'query parameter {repeated[0]!r} is given more than once')


def _filters(allowed, default, known=BULK_FILTERS):
    """The bulk filters of the query: (statuses, kind, created_before); no
    status: the `default` ones, no other filter: every job of those. 400 for
    a status outside `allowed` (comma-separated, as the document's pattern)."""
    _known_parameters(known)
    args = request.args
    statuses = tuple(args['status'].split(',')) if 'status' in args else default
    if not statuses or len(statuses) > len(allowed) or not set(statuses) <= set(allowed):
        raise ApiError(400, f'status is one or more of {", ".join(allowed)} (comma-separated)')
    kind = args.get('kind')
    if kind is not None and '\x00' in kind:
        raise ApiError(400, 'kind cannot contain NUL')
    created_before = args.get('created_before')
    if created_before is not None:
        created_before = _instant('created_before', created_before)
    return statuses, kind, created_before


@bp.post('/jobs/cancel')
def cancel_jobs():
    """Cancel every scheduled and/or queued job matching the filters (query
    parameters status, kind, created_before); answer how many."""
    statuses, kind, before = _filters(ledger.Status.cancellable(), ledger.Status.cancellable())
    count = ledger.cancel_matching(_session(), statuses, kind=kind, created_before=before)
    return {'count': count}


@bp.post('/jobs/retry')
def retry_jobs():
    """Queue again up to ?limit= (10,000) failed and/or cancelled jobs
    matching the filters, oldest first, those whose payload still fits its
    kind's schema; answer how many (`count`) and how many were left for a
    payload that no longer fits (`refused`). Send it again while count > 0."""
    statuses, kind, before = _filters(ledger.Status.retriable(), (ledger.Status.FAILED,),
                                      known=BULK_FILTERS | {'limit'})
    limit = request.args.get('limit', str(BULK_LIMIT))
    if not re.fullmatch('[0-9]{1,5}', limit) or not 1 <= int(limit) <= BULK_LIMIT:
        raise ApiError(400, f'limit is a whole number from 1 to {BULK_LIMIT}')
    app = current_app._get_current_object()

    def still_valid(kind_name, payload):
        found = REGISTRY.get(kind_name)
        return found is not None and not validation_errors(found, payload)

    def send(by_kind):
        for kind_name, ids in by_kind.items():
            publish(app.extensions['celery'], ids, kind_name,
                    per_message=app.config['WORKER_BATCH_SIZE'])

    count, refused = ledger.retry_matching(_session(), send, statuses, kind=kind,
                                           created_before=before, check=still_valid,
                                           limit=int(limit))
    return {'count': count, 'refused': refused}


@bp.get('/kinds')
def list_kinds():
    # The schemas as /openapi.json shows them: with the strings PostgreSQL can store.
    return {'kinds': [{'name': k.name, 'description': k.description,
                       'schema': storable_schema(k.schema)}
                      for k in sorted(REGISTRY.values(), key=lambda k: k.name)]}
