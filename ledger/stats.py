"""The metrics' reads of the ledger: totals per kind and status over a range
of ids, and the few bounds a scrape needs (web/metrics.py keeps the totals
of settled jobs and reads only the rest)."""
from sqlalchemy import text

from ledger.model import Status
from pg.exceptions import translate

# Upper bounds (seconds) of the duration histogram's buckets, +Inf added.
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

# Per kind and status, over the jobs with after < id <= upto: the jobs, their
# retries (attempts past the first), and for finished jobs the sum of their
# durations, acceptance (created_at) to completion (finished_at), and how
# many took at most each bucket's bound.
_BUCKET_COLUMNS = ',\n       '.join(
    f'count(*) FILTER (WHERE seconds <= {bound!r})' for bound in BUCKETS)
TOTALS = text(f'''
SELECT kind, status, count(*), coalesce(sum(attempts - 1) FILTER (WHERE attempts > 1), 0),
       coalesce(sum(seconds), 0),
       {_BUCKET_COLUMNS}
FROM (SELECT kind, status, attempts, date_part('epoch', finished_at - created_at) AS seconds
      FROM jobs WHERE id > :after AND id <= :upto) AS j
GROUP BY kind, status
''')

# The oldest unfinished job (scheduled ones too: through their own index) and the newest job older than `settle` seconds
# (what may be settled), whether the job `mark` is still there (the ledger
# was not emptied), the age of the oldest queued job, the sessions of this
# database waiting for a lock. Through indexes (ix_jobs_unfinished, the
# primary key: backwards over the last `settle` seconds of jobs).
BOUNDS = text('''
SELECT (SELECT least(min(id), (SELECT min(id) FROM jobs WHERE status = :scheduled))
        FROM (SELECT id FROM jobs WHERE status IN (:queued, :running) OFFSET 0) AS unfinished),
       (SELECT id FROM jobs WHERE created_at < now() - make_interval(secs => :settle)
        ORDER BY id DESC LIMIT 1),
       (SELECT created_at FROM jobs WHERE id = :mark),
       (SELECT date_part('epoch', clock_timestamp() - min(created_at))
        FROM jobs WHERE status = :queued),
       (SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock')
''')

LAST = text('SELECT id, created_at FROM jobs WHERE id <= :upto ORDER BY id DESC LIMIT 1')


def bounds(conn, settle_seconds, mark_id):
    """(oldest unfinished id, newest id older than `settle_seconds`,
    created_at of job `mark_id` or None, age in seconds of the oldest queued
    job, sessions waiting for a lock)."""
    with translate():
        return tuple(conn.execute(BOUNDS, {
            'queued': Status.QUEUED, 'running': Status.RUNNING, 'scheduled': Status.SCHEDULED,
            'settle': settle_seconds,
            'mark': mark_id or 0}).one())


def totals(conn, after, upto):
    """Rows (kind, status, count, retries, seconds, *bucket counts) of the
    jobs with after < id <= upto."""
    with translate():
        return conn.execute(TOTALS, {'after': after, 'upto': upto}).all()


def last_job(conn, upto):
    """(id, created_at) of the newest job with id <= upto, or None."""
    with translate():
        row = conn.execute(LAST, {'upto': upto}).one_or_none()
    return tuple(row) if row else None
