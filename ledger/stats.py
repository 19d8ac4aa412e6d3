"""The metrics' reads of the ledger: the tallies of events (ledger.counts),
and what is unfinished now, through the partial index of unfinished jobs;
nothing that grows with the history."""
from sqlalchemy import text

from ledger.counts import BUCKETS, totals  # noqa: F401  (the metrics' API)
from ledger.model import Status
from pg.exceptions import translate

# OFFSET 0: each part planned alone, through its partial index
# (ix_jobs_unfinished, ix_jobs_scheduled).
UNFINISHED = text('''
SELECT kind, status, count(*)
FROM ((SELECT kind, status FROM jobs WHERE status IN (:queued, :running) OFFSET 0)
      UNION ALL
      (SELECT kind, status FROM jobs WHERE status = :scheduled OFFSET 0)) AS u
GROUP BY kind, status
''')

# The age of the oldest queued job, the sessions of this database waiting for a lock.
NOW = text('''
SELECT (SELECT date_part('epoch', clock_timestamp() - min(created_at))
        FROM jobs WHERE status = :queued),
       (SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock')
''')


def unfinished(conn):
    """Rows (kind, status, count) of the jobs scheduled, queued or running now."""
    with translate():
        return conn.execute(UNFINISHED, {'queued': Status.QUEUED, 'running': Status.RUNNING,
                                         'scheduled': Status.SCHEDULED}).all()


def now(conn):
    """(age in seconds of the oldest queued job or None, sessions waiting for a lock)."""
    with translate():
        return tuple(conn.execute(NOW, {'queued': Status.QUEUED}).one())
