"""Reading jobs back: one, a listing, and the counts a benchmark waits on."""
from sqlalchemy import text

from ledger.model import MAX_JOB_ID, Job, Status
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


def listing(status=None, kind=None, limit=50):
    """Jobs newest first, of one status and/or kind if given."""
    filters = {}
    if status is not None:
        filters['status'] = Status(status)
    if kind is not None:
        filters['kind'] = kind
    return Job.objects.filter_by(order_by='-id', limit=limit, **filters)


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
