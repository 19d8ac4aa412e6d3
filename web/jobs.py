"""The jobs API: accept, record and enqueue jobs; read them back; retry."""
import base64
import binascii
import re

from flask import Blueprint, current_app, request

import ledger
from service.queue import publish_recorded, publish_retried
from tasks import REGISTRY
from web import idempotency, request_id
from web.body import json_body
from web.errors import ApiError
from web.group_commit import EXTENSION as GROUP_COMMIT
from web.payloads import stored, summary, validation_errors

bp = Blueprint('jobs', __name__)


def _kind(name):
    kind = REGISTRY.get(name)
    if kind is None:
        raise ApiError(404, f'unknown job kind {name[:64]!r}: GET /kinds lists them')
    return kind


def _session():
    return current_app.extensions['pg'].pool.connection().session


def _enqueue(kind, payloads, stored_payloads, keys=None):
    """Record the jobs (committed), then publish them; return (ids, created).

    A request replayed with its Idempotency-Key records and publishes nothing."""
    session = _session()
    digests = keys and [idempotency.digest(kind.name, p) for p in payloads]
    try:
        ids, created = ledger.record(session, kind.name, stored_payloads, scope=idempotency.scope(),
                                     keys=keys, digests=digests, request_id=request_id.current(),
                                     key_window=current_app.config['FLASK_IDEMPOTENCY_WINDOW_SECONDS'])
    except ledger.IdempotencyConflict:
        session.rollback()
        raise ApiError(422, f'{idempotency.HEADER} was already used with another request')
    session.commit()
    if created:
        publish_recorded({kind.name: ids})
    return ids, created


def _accepted(job_id, kind_name, status=ledger.Status.QUEUED):
    # What url_for('jobs.get_job') builds, for a fraction of its cost on the hot path.
    status_url = f'{request.script_root}/jobs/{job_id}'
    body = {'id': job_id, 'kind': kind_name, 'status': status, 'status_url': status_url}
    return body, 202, {'Location': status_url}


def _invalid(kind, errors, index=None):
    if index is None:
        return ApiError(400, f'invalid {kind.name} payload: {summary(errors)}', errors=errors)
    return ApiError(400, f'item {index} is not a valid {kind.name} payload: {summary(errors)}',
                    errors=errors)


@bp.post('/jobs/<kind_name>')
def create_job(kind_name):
    group_commit = current_app.extensions[GROUP_COMMIT]
    with group_commit.arriving():
        kind = _kind(kind_name)
        payload = json_body()
        errors = validation_errors(kind, payload)
        if errors:
            raise _invalid(kind, errors)
        keys = idempotency.request_keys()
        kept = stored(kind, payload)
        if keys is None:
            # Without a key there is nothing to look up: the job joins the next group commit.
            return _accepted(group_commit.submit(kind.name, kept, request_id.current()), kind.name)
    [job_id], created = _enqueue(kind, [payload], [kept], keys)
    if created:
        return _accepted(job_id, kind.name)
    return _accepted(job_id, kind.name, _job(job_id).status)


@bp.post('/jobs/<kind_name>/batch')
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
    kept = [stored(kind, p, prefix=(i,)) for i, p in enumerate(payloads)]
    ids, _ = _enqueue(kind, payloads, kept, keys)
    return {'ids': ids}, 202


def _job(job_id):
    job = ledger.get(job_id)
    if job is None:
        raise ApiError(404, f'no job {job_id}')
    return job


@bp.get('/jobs/<int:job_id>')
def get_job(job_id):
    return _job(job_id).public()


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
    """Queue a failed job again (its attempts counted afresh), its payload
    checked against its kind's schema; if the broker refuses, it stays failed."""
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


@bp.get('/kinds')
def list_kinds():
    return {'kinds': [{'name': k.name, 'description': k.description, 'schema': k.schema}
                      for k in sorted(REGISTRY.values(), key=lambda k: k.name)]}
