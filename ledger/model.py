"""The ledger's table: one row per accepted job, the source of truth of its state."""
from enum import StrEnum

from sqlalchemy import (ARRAY, BigInteger, Column, DateTime, Float, Index, Integer,
                        String, Text, UniqueConstraint, text)
from sqlalchemy.dialects.postgresql import JSONB

from pg.orm import BaseModel

# The largest id a job can have (bigint): a larger one in a URL names no job.
MAX_JOB_ID = 2**63 - 1


class Status(StrEnum):
    """A job goes queued -> running -> succeeded | failed; a failed job may be
    queued again (retry), and a running one whose attempt met a transient
    error is queued again for its next attempt. A job given a time to run
    waits scheduled until it is due (then queued); a scheduled or queued job
    may be cancelled, which finishes it unapplied."""
    SCHEDULED = 'scheduled'
    QUEUED = 'queued'
    RUNNING = 'running'
    SUCCEEDED = 'succeeded'
    FAILED = 'failed'
    CANCELLED = 'cancelled'

    @classmethod
    def finished(cls):
        return (cls.SUCCEEDED, cls.FAILED, cls.CANCELLED)

    @classmethod
    def cancellable(cls):
        return (cls.SCHEDULED, cls.QUEUED)

    @classmethod
    def retriable(cls):
        return (cls.FAILED, cls.CANCELLED)


# The predicate of ix_jobs_finished, written with the values themselves: a
# statement proves it holds (and may use the index) from its own literals.
FINISHED = 'status IN ({})'.format(', '.join(f"'{status}'" for status in Status.finished()))


class Job(BaseModel):
    __tablename__ = 'jobs'
    __table_args__ = (
        # Only the unfinished jobs (the sweep's, the metrics'): a job's last
        # version, finished, adds no entry, and no index is kept by kind, so
        # each job costs the fewest index writes.
        Index('ix_jobs_unfinished', 'status', 'created_at',
              postgresql_where=text("status IN ('queued', 'running')")),
        # The scheduled jobs by the time they are due (beat's due pass), and
        # their ids (the metrics' oldest unfinished job): no entry for a job
        # never scheduled, so the hot path pays nothing for it.
        Index('ix_jobs_scheduled', 'run_at', 'id',
              postgresql_where=text("status = 'scheduled'")),
        Index('ux_jobs_idempotency', 'idempotency_scope', 'idempotency_key', unique=True,
              postgresql_where=text('idempotency_key IS NOT NULL')),
        # Only the finished jobs, by kind and outcome, newest last: listings
        # (GET /jobs, keyset by id) and the pruning walk. One entry per job,
        # written by its completion (migration 0005, built concurrently).
        Index('ix_jobs_finished', 'kind', 'status', 'id',
              postgresql_where=text(FINISHED)),
    )

    id = Column(BigInteger, primary_key=True)
    kind = Column(String(64), nullable=False)
    payload = Column(JSONB, nullable=False)
    status = Column(String(16), nullable=False, default=Status.QUEUED.value)
    attempts = Column(Integer, nullable=False, default=0)
    result = Column(JSONB)
    error = Column(Text)
    finished_at = Column(DateTime(timezone=True))
    # Idempotency-Key of the request, scoped per API token, and the digest of its body.
    idempotency_scope = Column(String(64))
    idempotency_key = Column(Text)
    request_digest = Column(String(64))
    # When a scheduled job is due (null: at once).
    run_at = Column(DateTime(timezone=True))
    # X-Request-ID of the request that recorded it: the worker's log lines about it carry it.
    request_id = Column(String(128))
    # The advisory lock key of the worker process that claimed it last
    # (ledger.owners): while that lock is held, its worker is alive.
    claimed_by = Column(Integer)

    def public(self):
        """The job as the HTTP API shows it."""
        return public(self)


def public(job):
    """The job as the HTTP API shows it: a Job, or a row of the columns of
    ledger.reads.PUBLIC."""
    return {
        'id': job.id, 'kind': job.kind, 'status': job.status,
        'attempts': job.attempts, 'result': job.result, 'error': job.error,
        'created_at': job.created_at.isoformat() if job.created_at else None,
        'updated_at': job.updated_at.isoformat() if job.updated_at else None,
        'request_id': job.request_id,
        'run_at': job.run_at.isoformat() if job.run_at else None,
    }


class JobCount(BaseModel):
    """Monotone tallies of what happened to jobs, per kind and event
    (accepted, retried, cancelled, succeeded, failed), kept in the transactions that make
    the events: pruning and retries never lower them. Each session counts in
    rows of its own (slot), so no transaction ever waits on another's row."""
    __tablename__ = 'job_counts'
    __table_args__ = (UniqueConstraint('kind', 'event', 'slot', name='ux_job_counts'),)

    kind = Column(String(64), nullable=False)
    event = Column(String(16), nullable=False)
    slot = Column(Integer, nullable=False)  # the backend pid of the counting session, 0: folded
    total = Column(BigInteger, nullable=False, default=0)
    # Finished jobs: the sum of their durations (acceptance to completion) and
    # how many took at most each bound of ledger.counts.BUCKETS.
    seconds = Column(Float, nullable=False, default=0.0)
    buckets = Column(ARRAY(BigInteger))


def id_array(ids):
    """Job ids as one PostgreSQL array literal (a bound parameter, cast to
    bigint[] by the statement): cheaper for the driver than a list."""
    return _literal([int(i) for i in ids])


def _literal(ints):
    return '{' + ','.join(map(str, ints)) + '}'


# The jobs of a list of ids, found by the primary key. The range alone makes
# the planner take it: with `id = ANY` only, a list of a few hundred ids
# (a batch's message) was looked for by a scan of the whole table, up to
# a few hundred thousand rows (10 ms for 30,000: 1 ms by the key).
IN_IDS = 'id = ANY(CAST(:ids AS bigint[])) AND id BETWEEN :first_id AND :last_id'


def in_ids(ids):
    """The parameters of IN_IDS for the job ids `ids`."""
    ids = [int(i) for i in ids]
    return {'ids': _literal(ids), 'first_id': min(ids, default=1), 'last_id': max(ids, default=0)}
