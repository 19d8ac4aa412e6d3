"""The job ledger: one row per accepted job, the source of truth of its state.

A job goes queued -> running -> succeeded | failed. The worker completes a
job in the same transaction as its effect, so a job is applied at most once
whatever the broker delivers.
"""
import json

from sqlalchemy import (BigInteger, Column, DateTime, Index, Integer, String, Text, func,
                        select, text, update)
from sqlalchemy.dialects.postgresql import JSONB, insert as pg_insert

from pg.exceptions import translate
from pg.orm import BaseModel

QUEUED, RUNNING, SUCCEEDED, FAILED = 'queued', 'running', 'succeeded', 'failed'
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED)
FINISHED = (SUCCEEDED, FAILED)


class Job(BaseModel):
    __tablename__ = 'jobs'
    __table_args__ = (
        # Only the unfinished jobs (the sweep's, the metrics'): a job's last
        # version, finished, adds no entry, and no index is kept by kind, so
        # each job costs the fewest index writes.
        Index('ix_jobs_unfinished', 'status', 'created_at',
              postgresql_where=text("status IN ('queued', 'running')")),
        Index('ux_jobs_idempotency', 'idempotency_scope', 'idempotency_key', unique=True,
              postgresql_where=text('idempotency_key IS NOT NULL')),
    )

    id = Column(BigInteger, primary_key=True)
    kind = Column(String(64), nullable=False)
    payload = Column(JSONB, nullable=False)
    status = Column(String(16), nullable=False, default=QUEUED)
    attempts = Column(Integer, nullable=False, default=0)
    result = Column(JSONB)
    error = Column(Text)
    finished_at = Column(DateTime(timezone=True))
    # Idempotency-Key of the request, scoped per API token, and the digest of its body.
    idempotency_scope = Column(String(64))
    idempotency_key = Column(Text)
    request_digest = Column(String(64))
    # X-Request-ID of the request that recorded it: the worker's log lines about it carry it.
    request_id = Column(String(128))

    def public(self):
        """The job as the HTTP API shows it."""
        return {
            'id': self.id, 'kind': self.kind, 'status': self.status,
            'attempts': self.attempts, 'result': self.result, 'error': self.error,
            'created_at': self.created_at.isoformat() if self.created_at else None,
            'updated_at': self.updated_at.isoformat() if self.updated_at else None,
            'request_id': self.request_id,
        }


# In id order, so two deliveries of one group cannot deadlock. "Not
# finished" rather than "queued or running": worded so, the condition cannot
# lead the planner to the partial index of unfinished jobs (which under a
# backlog holds them all) instead of the primary key.
CLAIM_MANY = text('''
UPDATE jobs SET status = :running, attempts = attempts + 1, updated_at = now()
WHERE id IN (SELECT id FROM jobs WHERE id = ANY(CAST(:ids AS bigint[]))
             AND status NOT IN (:succeeded, :failed)
             ORDER BY id FOR UPDATE)
RETURNING id, attempts, request_id
''')


ASYNC_COMMIT = text('SET LOCAL synchronous_commit TO off')


def claim_many(session, job_ids):
    """Mark the unfinished jobs among `job_ids` running and count the attempt,
    committed at once, so a worker that dies mid-job leaves a trace. Returns
    {job id: (attempt number, request id)}; a job unknown or finished already
    (a duplicate delivery) is left out."""
    with translate():
        # Not worth a wait for the disk: a claim lost in a crash only undercounts
        # attempts, while the effect and the completion are committed durably.
        session.execute(ASYNC_COMMIT)
        claimed = session.execute(CLAIM_MANY, {
            'ids': id_array(job_ids), 'running': RUNNING, 'succeeded': SUCCEEDED,
            'failed': FAILED}).all()
        session.commit()
    return {job_id: (attempt, request_id) for job_id, attempt, request_id in claimed}


def settle(session, job_id, status, *, result=None, error=None, from_status=RUNNING):
    """Set the status of a job that is still `from_status`; True if it was."""
    values = {'status': status, 'error': error, 'updated_at': func.now()}
    if status in FINISHED:
        values.update(result=result, finished_at=func.clock_timestamp())
    with translate():
        done = session.execute(
            update(Job).where(Job.id == job_id, Job.status == from_status).values(**values)
            .returning(Job.id)).scalar()
    return done is not None


class IdempotencyConflict(Exception):
    """The Idempotency-Key was already used with another request."""

    def __init__(self, message=None):
        super().__init__(message or self.__doc__)


def insert_jobs(session, jobs):
    """Insert one queued job per (kind, payload[, request id]) tuple (not
    committed); return their ids."""
    with translate():
        return _insert(session, jobs)


# One statement whatever the number of jobs (prepared once by the driver). The
# ids come from the sequence in the order of the rows, so sorted they match them.
INSERT_JOBS = text('''
INSERT INTO jobs (kind, payload, status, attempts, request_id)
SELECT job->>'kind', job->'payload', :queued, 0, job->>'request_id'
FROM jsonb_array_elements(CAST(:jobs AS jsonb)) WITH ORDINALITY AS t(job, n)
ORDER BY n
RETURNING id
''')


def _insert(session, jobs):
    # The hot path of every POST: plain SQL, no ORM objects, and the jobs as
    # one JSON document (one parameter: no per-value work in the driver).
    ids = session.scalars(INSERT_JOBS, {'queued': QUEUED, 'jobs': json.dumps([
        {'kind': job[0], 'payload': job[1], 'request_id': job[2] if len(job) > 2 else None}
        for job in jobs])}).all()
    return sorted(ids)


def id_array(ids):
    """Job ids as one PostgreSQL array literal (a bound parameter, cast to
    bigint[] by the statement): cheaper for the driver than a list."""
    return '{' + ','.join(str(int(i)) for i in ids) + '}'


def record(session, kind, payloads, *, scope=None, keys=None, digests=None, request_id=None):
    """Insert one queued job per payload (not committed), each with the
    `request_id` of the request; return (ids, created).

    With idempotency `keys` (one per payload, with the `digests` of the
    requests), keys already recorded in `scope` insert nothing: their jobs'
    ids come back with created False. Raises IdempotencyConflict when a key
    was used for another request."""
    with translate():
        return _record(session, kind, payloads, scope, keys, digests, request_id)


def _record(session, kind, payloads, scope, keys, digests, request_id):
    if keys is None:
        return _insert(session, [(kind, p, request_id) for p in payloads]), True
    rows = [{'kind': kind, 'payload': p, 'status': QUEUED, 'attempts': 0,
             'request_id': request_id} for p in payloads]
    for row, key, digest in zip(rows, keys, digests):
        row.update(idempotency_scope=scope, idempotency_key=key, request_digest=digest)
    # Waits for a concurrent insert of the same key to commit, then skips the row.
    stmt = pg_insert(Job).on_conflict_do_nothing(
        index_elements=['idempotency_scope', 'idempotency_key'],
        index_where=Job.idempotency_key.isnot(None)).returning(Job.idempotency_key, Job.id)
    inserted = dict(session.execute(stmt, rows).all())
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
