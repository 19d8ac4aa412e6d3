"""Recording accepted jobs, and taking back those whose message could not be sent."""
import json

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ledger import counts
from ledger.errors import IdempotencyConflict
from ledger.model import IN_IDS, Job, Status, in_ids
from pg.exceptions import translate

# One statement whatever the number of jobs (prepared once by the driver),
# counted as accepted in it. The ids come from the sequence in the order of
# the rows, so sorted they match them.
INSERT_JOBS = text(f'''
WITH new AS (
    INSERT INTO jobs (kind, payload, status, attempts, request_id)
    SELECT job->>'kind', job->'payload', :queued, 0, job->>'request_id'
    FROM jsonb_array_elements(CAST(:jobs AS jsonb)) WITH ORDINALITY AS t(job, n)
    ORDER BY n
    RETURNING id, kind),
tally AS ({counts.tally('new', 'accepted')})
SELECT id FROM new
''')

# A batch's jobs share their kind and request id: only the payloads travel
# as the document, each element of it a job's payload as it is.
INSERT_BATCH = text(f'''
WITH new AS (
    INSERT INTO jobs (kind, payload, status, attempts, request_id)
    SELECT CAST(:kind AS varchar), payload, :queued, 0, :request_id
    FROM jsonb_array_elements(CAST(:payloads AS jsonb)) WITH ORDINALITY AS t(payload, n)
    ORDER BY n
    RETURNING id, kind),
tally AS ({counts.tally('new', 'accepted')})
SELECT id FROM new
''')

# A key older than its window is let go (its job stays): the key then makes a new job.
EXPIRE_KEYS = text('''
UPDATE jobs SET idempotency_scope = NULL, idempotency_key = NULL, request_digest = NULL
WHERE idempotency_scope = :scope AND idempotency_key = ANY(:keys)
  AND created_at < now() - make_interval(secs => :window)
''')

WITHDRAW = text('DELETE FROM jobs WHERE id = ANY(CAST(:ids AS bigint[])) AND status = :queued '
                'RETURNING id')


def insert_jobs(conn, jobs):
    """Insert one queued job per (kind, payload[, request id]) tuple, on a
    Session or a Connection (not committed); return their ids in order."""
    # The hot path of every POST: plain SQL, no ORM objects, and the jobs as
    # one JSON document (one parameter: no per-value work in the driver).
    document = json.dumps([
        {'kind': job[0], 'payload': job[1], 'request_id': job[2] if len(job) > 2 else None}
        for job in jobs])
    with translate():
        ids = conn.scalars(INSERT_JOBS, {'queued': Status.QUEUED, 'jobs': document}).all()
    return sorted(ids)


def insert_batch(conn, kind, payloads, request_id=None):
    """Insert one queued job of `kind` per payload, all of the request
    `request_id`, on a Session or a Connection (not committed); return their
    ids in order."""
    with translate():
        ids = conn.scalars(INSERT_BATCH, {'kind': kind, 'queued': Status.QUEUED,
                                          'request_id': request_id,
                                          'payloads': json.dumps(payloads)}).all()
    return sorted(ids)


def record(session, kind, payloads, *, scope=None, keys=None, digests=None, request_id=None,
           run_at=None, key_window=None):
    """Insert one queued job per payload (not committed), each with the
    `request_id` of the request; return (ids, created). With `run_at` (an
    aware datetime) the jobs are scheduled instead: beat queues them when due.

    With idempotency `keys` (one per payload, with the `digests` of the
    requests), keys recorded in `scope` less than `key_window` seconds ago
    insert nothing: their jobs' ids come back with created False; an older
    key is forgotten and makes a new job. Raises IdempotencyConflict when a
    key was used for another request."""
    if keys is None and run_at is None:
        return insert_batch(session, kind, payloads, request_id), True
    with translate():
        if keys is not None and key_window is not None:
            session.execute(EXPIRE_KEYS, {'scope': scope, 'keys': list(keys),
                                          'window': key_window})
        return _record_rows(session, kind, payloads, scope, keys, digests, request_id, run_at)


def _record_rows(session, kind, payloads, scope, keys, digests, request_id, run_at):
    status = Status.QUEUED if run_at is None else Status.SCHEDULED
    keyed = keys is not None
    if not keyed:
        keys = digests = [None] * len(payloads)
    rows = [{'kind': kind, 'payload': p, 'status': status, 'attempts': 0, 'run_at': run_at,
             'request_id': request_id, 'idempotency_scope': scope if keyed else None,
             'idempotency_key': key,
             'request_digest': digest}
            for p, key, digest in zip(payloads, keys, digests)]
    if not keyed:
        ids = session.scalars(pg_insert(Job).returning(Job.id, sort_by_parameter_order=True),
                              rows).all()
        counts.add(session, kind, 'accepted', len(ids))
        return ids, True
    # Waits for a concurrent insert of the same key to commit, then skips the row.
    stmt = pg_insert(Job).on_conflict_do_nothing(
        index_elements=['idempotency_scope', 'idempotency_key'],
        index_where=Job.idempotency_key.isnot(None)).returning(Job.idempotency_key, Job.id)
    inserted = dict(session.execute(stmt, rows).all())
    counts.add(session, kind, 'accepted', len(inserted))
    if len(inserted) == len(rows):
        return [inserted[k] for k in keys], True
    if inserted:
        raise IdempotencyConflict()
    found = session.execute(
        select(Job.idempotency_key, Job.id, Job.kind, Job.request_digest)
        .where(Job.idempotency_scope == scope, Job.idempotency_key.in_(keys))).all()
    by_key = {key: (job_id, job_kind, digest) for key, job_id, job_kind, digest in found}
    if len(by_key) != len(keys) or any(
            by_key[k][1] != kind or by_key[k][2] != d for k, d in zip(keys, digests)):
        raise IdempotencyConflict()
    return [by_key[k][0] for k in keys], False


def withdraw(session, job_ids):
    """Delete jobs recorded but never published (the broker refused their
    message), so nothing is left half-accepted; committed; return the ids
    deleted. Only jobs still queued: a job a worker already took stays (its
    message did reach the broker, whose answer was lost)."""
    with translate():
        session.rollback()
        withdrawn = {job_id for (job_id,) in session.execute(
            WITHDRAW, {**in_ids(job_ids), 'queued': Status.QUEUED})}
        session.commit()
    return withdrawn
