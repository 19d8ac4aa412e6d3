"""The jobs API: accept, record and enqueue jobs; read them back."""
import json
import re
import sys

from flask import Blueprint, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from pg.exceptions import ConnectionLostError, translate
from pg.pool import shared_engine

from tasks import REGISTRY
from tasks.kinds import InvalidPayload
from tasks.ledger import FAILED, QUEUED, STATUSES, IdempotencyConflict, Job, insert_jobs, record
from web import idempotency, request_id
from web.errors import ApiError
from web.group_commit import GroupCommit
from worker import publish

bp = Blueprint('jobs', __name__)

MAX_REPORTED_ERRORS = 20
MAX_JOB_ID = 2**63 - 1
MAX_MESSAGE = 300
GROUP_ENGINE = 'group_commit_engine'
# Flushes at once per process: the next group gathers while the last commits.
GROUP_LEADERS = 2
SECRET_FIELD = re.compile('password|secret|token', re.IGNORECASE)


def _kind(name):
    kind = REGISTRY.get(name)
    if kind is None:
        raise ApiError(404, f'unknown job kind {name[:64]!r}: GET /kinds lists them')
    return kind


def _refuse_constant(name):
    raise ValueError(f'{name} is not valid JSON')


# What PostgreSQL cannot store in jsonb/text: NUL, and (escaped) unpaired surrogates.
UNSTORABLE = re.compile('[\x00\ud800-\udfff]')
ESCAPED_UNSTORABLE = re.compile(r'\\u(0000|[dD][89a-fA-F])')


def _unstorable_string(document):
    """The JSON pointer of the first string (key or value) PostgreSQL cannot
    store, or None. Iterative: the document may be nested close to the limit."""
    stack = [(document, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if UNSTORABLE.search(value):
                return _pointer(path, ())
        elif isinstance(value, dict):
            for key, item in value.items():
                if UNSTORABLE.search(key):
                    return _pointer(path, (key,))
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
    return None


def _streamed_past_the_limit(raw):
    """Whether a body sent without Content-Length (chunked) went on past
    MAX_CONTENT_LENGTH: werkzeug then hands over the first MAX_CONTENT_LENGTH
    bytes without an error, so one byte more is looked for here."""
    limit = request.max_content_length
    return (request.content_length is None and limit is not None and len(raw) >= limit
            and bool(request.environ['wsgi.input'].read(1)))


def json_body():
    """The request's JSON document. 415 unless sent as JSON, 413 past
    FLASK_MAX_CONTENT_LENGTH, 400 unless it is UTF-8 and parses."""
    if not request.is_json:
        raise ApiError(415, 'send the body as application/json')
    raw = request.get_data(cache=False)
    if _streamed_past_the_limit(raw):
        raise RequestEntityTooLarge()
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


def _pointer(prefix, path):
    parts = [*prefix, *path]
    return '/' + '/'.join(str(p).replace('~', '~0').replace('/', '~1') for p in parts)


def _entries(error, prefix):
    """Report/pointer pairs for one violation; a missing or unknown field is
    pointed at by name rather than at the object that holds it. Lazy: an
    object may hold 100,000 unknown fields, and only the first few are reported."""
    path = [*prefix, *error.absolute_path]
    instance = error.instance if isinstance(error.instance, dict) else None
    if instance is not None and error.validator == 'required':
        return ((_pointer(path, [name]), 'is required')
                for name in error.validator_value if name not in instance)
    if instance is not None and error.validator == 'additionalProperties':
        known = set(error.schema.get('properties', {}))
        return ((_pointer(path, [name]), 'is not an allowed field')
                for name in instance if name not in known)
    if any(SECRET_FIELD.search(str(part)) for part in path):
        # jsonschema's message quotes the value: not for a password.
        return [(_pointer(path, []), f'does not satisfy {error.validator} '
                                     f'{json.dumps(error.validator_value)[:100]}')]
    return [(_pointer(path, []), error.message[:MAX_MESSAGE])]


def validation_errors(kind, payload, prefix=()):
    """The schema violations of a payload (at most 20), each with its JSON pointer."""
    if kind.surely_valid(payload):
        return []
    errors = {}
    for error in kind.validator.iter_errors(payload):
        # One violation may name many fields (additionalProperties: one per unknown key).
        for path, message in _entries(error, prefix):
            errors.setdefault(path, message)
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
    return [{'path': path, 'message': message} for path, message in sorted(errors.items())]


def _summary(errors):
    return f'{errors[0]["path"]} {errors[0]["message"]}'


def _off_the_loop(function, *args):
    """Call `function` on a real thread when gevent serves this process: a
    `prepare` such as bcrypt (about 0.3 s, without the GIL) would otherwise
    stall every other request of the process meanwhile."""
    monkey = sys.modules.get('gevent.monkey')
    if monkey is not None and monkey.is_module_patched('threading'):
        import gevent
        return gevent.get_hub().threadpool.apply(function, args)
    return function(*args)


def _stored(kind, payload, prefix=()):
    """The payload as the ledger keeps it; a ValueError of `prepare` is a 400."""
    try:
        return _off_the_loop(kind.stored_payload, payload) if kind.prepare else payload
    except ValueError as error:
        path = _pointer(prefix, [error.field] if isinstance(error, InvalidPayload) else [])
        message = str(error)[:MAX_MESSAGE]
        raise ApiError(400, f'{path} {message}', errors=[{'path': path, 'message': message}])


def _enqueue(kind, payloads, stored, keys=None):
    """Record the jobs (committed), then publish them; return (ids, created).

    A request replayed with its Idempotency-Key records and publishes nothing."""
    db = current_app.extensions['pg']
    session = db.pool.connection().session
    digests = keys and [idempotency.digest(kind.name, p) for p in payloads]
    try:
        ids, created = record(session, kind.name, stored, scope=idempotency.scope(),
                              keys=keys, digests=digests, request_id=request_id.current())
    except IdempotencyConflict:
        db.pool.rollback()
        raise ApiError(422, f'{idempotency.HEADER} was already used with another request')
    db.pool.commit()
    if created:
        _publish(db, {kind.name: ids})
    return ids, created


def _flush(jobs):
    """Record (committed) and publish a group of (kind, payload, request id)
    jobs; return their ids."""
    ids = _record_group(jobs)
    by_kind = {}
    for job, job_id in zip(jobs, ids):
        by_kind.setdefault(job[0], []).append(job_id)
    _publish(current_app.extensions['pg'], by_kind)
    return ids


def _record_group(jobs):
    """INSERT and COMMIT a group on a connection of the group commit's own: no
    ORM session and no ping on checkout, the hot path's biggest costs after the
    statement. A connection found dead by the INSERT (nothing was committed) is
    replaced once, as the ping would have done."""
    engine = current_app.extensions[GROUP_ENGINE]
    for last_try in (False, True):
        with translate():
            conn = engine.connect()
        with conn:
            try:
                ids = insert_jobs(conn, jobs)
            except ConnectionLostError:
                if last_try:
                    raise
                continue  # the pool dropped its dead connections: take a new one
            with translate():
                conn.commit()
            return ids


def init_group_commit(app):
    app.extensions['group_commit'] = GroupCommit(
        _flush, limit=app.config['WORKER_BATCH_SIZE'],
        delay=app.config['FLASK_GROUP_COMMIT_MS'] / 1000, leaders=GROUP_LEADERS)
    default = app.extensions['pg'].pool.connection().engine
    app.extensions[GROUP_ENGINE] = shared_engine(
        default.url, pool_size=GROUP_LEADERS, max_overflow=0, pool_pre_ping=False,
        lock_timeout_ms=app.config['SQLALCHEMY_LOCK_TIMEOUT_MS'])

def _publish(db, by_kind):
    """Publish recorded jobs, {kind: ids}. If the broker refuses, they are all
    taken back and the answer is 503: nothing is left half-accepted."""
    try:
        for kind_name, ids in by_kind.items():
            publish(current_app.extensions['celery'], ids, kind_name,
                    per_message=current_app.config['WORKER_BATCH_SIZE'])
    except Exception:
        _withdraw(db, [job_id for ids in by_kind.values() for job_id in ids])
        raise


def _withdraw(db, ids):
    db.pool.rollback()
    Job.objects.raw_sql('DELETE FROM jobs WHERE id = ANY(:ids) AND status = :queued',
                        ids=ids, queued=QUEUED)
    db.pool.commit()


def _accepted(job_id, kind_name, status=QUEUED):
    # What url_for('jobs.get_job') builds, for a fraction of its cost on the hot path.
    status_url = f'{request.script_root}/jobs/{job_id}'
    body = {'id': job_id, 'kind': kind_name, 'status': status, 'status_url': status_url}
    return body, 202, {'Location': status_url}


@bp.post('/jobs/<kind_name>')
def create_job(kind_name):
    group_commit = current_app.extensions['group_commit']
    with group_commit.arriving():
        kind = _kind(kind_name)
        payload = json_body()
        errors = validation_errors(kind, payload)
        if errors:
            raise ApiError(400, f'invalid {kind.name} payload: {_summary(errors)}', errors=errors)
        keys = idempotency.request_keys()
        stored = _stored(kind, payload)
        if keys is None:
            # Without a key there is nothing to look up: the job joins the next group commit.
            return _accepted(group_commit.submit(kind.name, stored, request_id.current()),
                             kind.name)
    [job_id], created = _enqueue(kind, [payload], [stored], keys)
    if created:
        return _accepted(job_id, kind.name)
    return _accepted(job_id, kind.name, _job(job_id).status)


@bp.post('/jobs/<kind_name>/batch')
def create_batch(kind_name):
    kind = _kind(kind_name)
    payloads = json_body()
    limit = min(current_app.config['FLASK_BATCH_LIMIT'], kind.batch_limit or float('inf'))
    if not isinstance(payloads, list) or not payloads:
        raise ApiError(400, 'a batch is a non-empty JSON array of payloads')
    if len(payloads) > limit:
        raise ApiError(400, f'a batch of {kind.name} holds at most {limit} jobs')
    for index, payload in enumerate(payloads):
        errors = validation_errors(kind, payload, prefix=(index,))
        if errors:
            raise ApiError(400, f'item {index} is not a valid {kind.name} payload: '
                                f'{_summary(errors)}', errors=errors)
    keys = idempotency.request_keys(len(payloads))
    stored = [_stored(kind, p, prefix=(i,)) for i, p in enumerate(payloads)]
    ids, _ = _enqueue(kind, payloads, stored, keys)
    return {'ids': ids}, 202


def _job(job_id):
    job = Job.objects.filter_by(id=job_id).first() if job_id <= MAX_JOB_ID else None
    if job is None:
        raise ApiError(404, f'no job {job_id}')
    return job


@bp.get('/jobs/<int:job_id>')
def get_job(job_id):
    return _job(job_id).public()


@bp.get('/jobs')
def list_jobs():
    """Jobs newest first, filtered by ?status= and ?kind=, at most ?limit= (50)."""
    filters = {}
    status = request.args.get('status')
    if status is not None:
        if status not in STATUSES:
            raise ApiError(400, f'status is one of {", ".join(STATUSES)}')
        filters['status'] = status
    if request.args.get('kind') is not None:
        if '\x00' in request.args['kind']:
            raise ApiError(400, 'kind cannot contain NUL')
        filters['kind'] = request.args['kind'][:64]
    limit = request.args.get('limit', '50')
    # ASCII digits only: '²' is a str.isdigit() but not an int().
    if not re.fullmatch('[0-9]{1,4}', limit) or not 1 <= int(limit) <= 1000:
        raise ApiError(400, 'limit is a whole number from 1 to 1000')
    jobs = Job.objects.filter_by(order_by='-id', limit=int(limit), **filters)
    return {'jobs': [job.public() for job in jobs]}


@bp.post('/jobs/<int:job_id>/retry')
def retry_job(job_id):
    """Queue a failed job again, its payload checked against its kind's schema."""
    job = _job(job_id)
    if job.status != FAILED:
        raise ApiError(409, f'job {job_id} is {job.status}: only failed jobs are retried')
    kind = _kind(job.kind)
    errors = validation_errors(kind, job.payload)
    if errors:
        raise ApiError(422, f'the payload of job {job_id} is no longer valid', errors=errors)
    db = current_app.extensions['pg']
    job.status, job.error, job.result, job.finished_at = QUEUED, None, None, None
    job.update()
    db.pool.commit()
    publish(current_app.extensions['celery'], [job.id], kind.name)
    return _accepted(job.id, kind.name)


@bp.get('/kinds')
def list_kinds():
    return {'kinds': [{'name': k.name, 'description': k.description, 'schema': k.schema}
                      for k in sorted(REGISTRY.values(), key=lambda k: k.name)]}
