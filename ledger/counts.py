"""Monotone tallies of job events (table job_counts), the source of the
jobs_*_total metrics: each event is counted by the statement that makes it,
in its transaction, so a count never goes down (a retried job keeps its
failure counted, a pruned job its outcome) and a scrape reads a few hundred
rows whatever the size of the ledger.

Events: accepted (recorded), retried (an attempt past a job's first),
cancelled, succeeded and failed (with the histogram of durations, acceptance to
completion). A tally statement is a CTE appended to the statement of the
change: `tally(source, event)` reads the rows `source` returned (columns
kind, and seconds for the outcomes).
"""
from sqlalchemy import text

from pg.exceptions import translate

# Upper bounds (seconds) of the duration histogram's buckets, +Inf added.
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# Each database session counts in rows of its own (slot: its backend pid), so
# no two transactions ever wait on one another's counter row (a hot-path
# INSERT never meets a lock timeout); the sweep folds the rows of sessions
# that have ended into slot 0, so the table stays a few hundred rows.
FOLDED = 0

_BUCKET_COUNTS = ', '.join(f'count(*) FILTER (WHERE seconds <= {bound!r})' for bound in BUCKETS)


def tally(source, event, where='', slot='pg_backend_pid()'):
    """SQL of a data-modifying CTE body adding the rows of `source` (kind
    and, for succeeded and failed, seconds) to the tallies of `event`, in
    the session's own slot."""
    durations = event in ('succeeded', 'failed')
    columns = (f"coalesce(sum(seconds), 0), ARRAY[{_BUCKET_COUNTS}]::bigint[]"
               if durations else '0, NULL')
    merge = ('''seconds = job_counts.seconds + excluded.seconds,
                   buckets = ARRAY(SELECT a + b FROM unnest(job_counts.buckets, excluded.buckets)
                                   WITH ORDINALITY AS u(a, b, i) ORDER BY i)'''
             if durations else 'seconds = job_counts.seconds')
    return f'''
    INSERT INTO job_counts (kind, event, slot, total, seconds, buckets)
    SELECT kind, '{event}', {slot}, count(*), {columns}
    FROM {source} {where} GROUP BY kind ORDER BY kind
    ON CONFLICT (kind, event, slot) DO UPDATE
        SET total = job_counts.total + excluded.total, {merge}'''


ADD = {event: text(f'''
WITH added(kind) AS (SELECT CAST(:kind AS varchar) FROM generate_series(1, :n))
{tally('added', event)}
''') for event in ('accepted', 'cancelled')}

TOTALS = text('''
SELECT kind, event, sum(total), sum(seconds), array_agg(buckets) FILTER (WHERE buckets IS NOT NULL)
FROM job_counts GROUP BY kind, event
''')

# The rows of sessions that have ended, added to slot 0 and deleted, in one
# statement (nothing counted twice or lost).
FOLD = text(f'''
WITH gone AS (
    DELETE FROM job_counts WHERE slot <> {FOLDED}
      AND slot NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
    RETURNING kind, event, total, seconds, buckets),
summed AS (
    SELECT kind, event, sum(total) AS total, sum(seconds) AS seconds,
           CASE WHEN count(buckets) > 0 THEN
               ARRAY(SELECT sum(b) FROM gone AS g, unnest(g.buckets) WITH ORDINALITY AS u(b, i)
                     WHERE g.kind = gone.kind AND g.event = gone.event GROUP BY i ORDER BY i)
           END AS buckets
    FROM gone GROUP BY kind, event)
INSERT INTO job_counts (kind, event, slot, total, seconds, buckets)
SELECT kind, event, {FOLDED}, total, seconds, buckets FROM summed ORDER BY kind, event
ON CONFLICT (kind, event, slot) DO UPDATE
    SET total = job_counts.total + excluded.total, seconds = job_counts.seconds + excluded.seconds,
        buckets = CASE WHEN job_counts.buckets IS NULL THEN excluded.buckets
                       WHEN excluded.buckets IS NULL THEN job_counts.buckets
                       ELSE ARRAY(SELECT a + b FROM unnest(job_counts.buckets, excluded.buckets)
                                  WITH ORDINALITY AS u(a, b, i) ORDER BY i) END
''')

# The tallies of the jobs already in a ledger, once (migration 0004): the
# same figures the metrics computed from the rows until then.
_SEEDED = "(SELECT kind FROM jobs_now, generate_series(2, attempts)) AS r"
SEED = f'''
WITH jobs_now AS (
    SELECT kind, status, attempts, date_part('epoch', finished_at - created_at) AS seconds
    FROM jobs),
accepted AS ({tally('jobs_now', 'accepted', slot=FOLDED)}),
retried AS ({tally(_SEEDED, 'retried', slot=FOLDED)}),
succeeded AS ({tally('jobs_now', 'succeeded', "WHERE status = 'succeeded'", slot=FOLDED)})
{tally('jobs_now', 'failed', "WHERE status = 'failed'", slot=FOLDED)}
'''


def add(conn, kind, event, count):
    """Count `count` jobs of `kind` for `event` (accepted: recorded;
    cancelled), in the caller's transaction."""
    if count:
        with translate():
            conn.execute(ADD[event], {'kind': kind, 'n': count})


def fold(conn):
    """Fold the tallies of ended sessions into one row per kind and event;
    committed by the caller."""
    with translate():
        conn.execute(FOLD)


def totals(conn):
    """{(kind, event): (total, seconds, [count at most each bound of BUCKETS])}."""
    with translate():
        rows = conn.execute(TOTALS).all()
    found = {}
    for kind, event, total, seconds, buckets in rows:
        summed = [sum(column) for column in zip(*buckets)] if buckets else [0] * len(BUCKETS)
        found[(kind, event)] = (int(total), float(seconds or 0), summed)
    return found
