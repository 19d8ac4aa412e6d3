"""Reading jobs back: one, a listing, and the counts a benchmark waits on."""
from sqlalchemy import select, text

from ledger.model import FINISHED, MAX_JOB_ID, Job, Status, public
from pg.exceptions import translate

# Two looks, each at a small partial index (unfinished, scheduled).
UNFINISHED = text('''
SELECT (SELECT count(*) FROM jobs WHERE status IN (:queued, :running))
     + (SELECT count(*) FROM jobs WHERE status = :scheduled)
''')
TOTAL = text('SELECT count(*) FROM jobs')
DURATIONS = text('''
SELECT count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY finished_at - created_at),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY finished_at - created_at)
FROM jobs WHERE status = :succeeded
''')
# How late scheduled jobs ran: from their run_at to their completion.
LATENESS = text('''
SELECT count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY finished_at - run_at),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY finished_at - run_at),
       min(finished_at - run_at)
FROM jobs WHERE status = :succeeded AND run_at IS NOT NULL
''')


def get(job_id):
    """The job `job_id` (a Job), or None."""
    if not 0 < job_id <= MAX_JOB_ID:
        return None
    return Job.objects.filter_by(id=job_id).first()


# What a client polls: one statement, no ORM object (the ORM's query and
# its session cost a GET /jobs/<id> half of its CPU).
PUBLIC = text('''
SELECT id, kind, status, attempts, result, error, created_at, updated_at, request_id, run_at
FROM jobs WHERE id = :id
''')


def public_job(conn, job_id):
    """The job `job_id` as the HTTP API shows it, read on the Connection
    `conn`, or None."""
    if not 0 < job_id <= MAX_JOB_ID:
        return None
    with translate():
        row = conn.execute(PUBLIC, {'id': job_id}).first()
    return None if row is None else public(row)


# Listings go newest first by id, from `before` on (keyset pagination), each
# through an index whatever the size of the ledger: finished jobs through
# ix_jobs_finished (kind, status, id), one range per kind and outcome
# (cancelled jobs too); unfinished ones through ix_jobs_unfinished, scheduled
# ones through ix_jobs_scheduled (OFFSET 0: planned alone, so
# the primary key's walk over the whole history is never chosen), sorted.
_FINISHED_OF_KIND = """(SELECT * FROM jobs WHERE kind = :kind AND status = '{status}' AND id < :before
    ORDER BY id DESC LIMIT :limit)"""
_UNFINISHED = """(SELECT * FROM (SELECT * FROM jobs WHERE status {condition} OFFSET 0) AS u
    WHERE id < :before {kind} ORDER BY id DESC LIMIT :limit)"""
# The kinds of the finished jobs (a CTE `kinds`, NULL last): a skip scan of
# ix_jobs_finished, one index probe per kind (the listings, the pruning).
FINISHED_KINDS = f"""RECURSIVE kinds(kind) AS (
    SELECT min(kind) FROM jobs WHERE {FINISHED}
    UNION ALL
    SELECT (SELECT min(kind) FROM jobs WHERE {FINISHED} AND kind > kinds.kind)
    FROM kinds WHERE kinds.kind IS NOT NULL)"""
_OUTCOME_EVERY_KIND = f"""
WITH {FINISHED_KINDS}
SELECT j.* FROM kinds CROSS JOIN LATERAL (
    SELECT * FROM jobs WHERE jobs.kind = kinds.kind AND status = :status AND id < :before
    ORDER BY id DESC LIMIT :limit) AS j
ORDER BY j.id DESC LIMIT :limit"""

LISTINGS = {
    # (status given, kind given, finished status) -> statement
    (False, False): 'SELECT * FROM jobs WHERE id < :before ORDER BY id DESC LIMIT :limit',
    (True, True, True): _FINISHED_OF_KIND.replace("'{status}'", ':status'),
    (True, False, True): _OUTCOME_EVERY_KIND,
    (True, True, False): _UNFINISHED.format(condition='= :status', kind='AND kind = :kind'),
    (True, False, False): _UNFINISHED.format(condition='= :status', kind=''),
    (False, True): 'SELECT * FROM ({}) AS j ORDER BY id DESC LIMIT :limit'.format(' UNION ALL '.join([
        *[_FINISHED_OF_KIND.format(status=status) for status in Status.finished()],
        _UNFINISHED.format(condition="IN ('queued', 'running')", kind='AND kind = :kind'),
        _UNFINISHED.format(condition="= 'scheduled'", kind='AND kind = :kind')])),
}


def listing(session, status=None, kind=None, limit=50, before=None):
    """Jobs newest first, of one status and/or kind if given, with ids below
    `before` if given: (at most `limit` Jobs, the `before` of the next page
    or None when this is the last)."""
    if status is None:
        key = (False, kind is not None)
    else:
        status = Status(status)
        key = (True, kind is not None, status in Status.finished())
    params = {'status': status, 'kind': kind, 'limit': limit + 1,
              'before': MAX_JOB_ID if before is None else before}
    with translate():
        jobs = session.execute(select(Job).from_statement(text(LISTINGS[key])),
                               params).scalars().all()
    if len(jobs) > limit:
        return jobs[:limit], jobs[limit - 1].id
    return jobs, None


def unfinished_count(conn):
    """How many jobs are scheduled, queued or running (looks at the small partial indexes)."""
    with translate():
        return conn.execute(UNFINISHED, {'queued': Status.QUEUED, 'running': Status.RUNNING,
                                         'scheduled': Status.SCHEDULED}).scalar()


def total_count(conn):
    with translate():
        return conn.execute(TOTAL).scalar()


def succeeded_durations(conn):
    """(count, p50, p99) of the succeeded jobs' acceptance to completion, as timedeltas."""
    with translate():
        return tuple(conn.execute(DURATIONS, {'succeeded': Status.SUCCEEDED}).one())


def scheduled_lateness(conn):
    """(count, p50, p99, min) of the succeeded scheduled jobs' run_at to
    completion, as timedeltas (the benchmark's lateness)."""
    with translate():
        return tuple(conn.execute(LATENESS, {'succeeded': Status.SUCCEEDED}).one())
