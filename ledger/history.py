"""A ledger with history, for the benchmark's history and index_cost
scenarios: finished jobs filled in SQL, and the reads that measure it."""
from sqlalchemy import text

from ledger.model import FINISHED
from pg.exceptions import translate

# `rows` finished jobs spread over the last 30 days, oldest first (ids grow
# with time, as they do), one in 20 failed, three kinds.
FILL = text('''
INSERT INTO jobs (kind, payload, status, attempts, result, error, finished_at, created_at, updated_at)
SELECT (ARRAY['genre.create', 'user.credit', 'artist.create'])[1 + i % 3],
       '{"name": "old", "description": "history"}',
       CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'succeeded' END, 1,
       CASE WHEN i % 20 = 0 THEN NULL ELSE '{"id": 1}'::jsonb END,
       CASE WHEN i % 20 = 0 THEN 'no such genre' END,
       t + interval '20 ms', t, t + interval '20 ms'
FROM generate_series(:first, :last) AS i,
     LATERAL (SELECT now() - interval '30 days' + i * interval '30 days' / :rows AS t) AS at
''')
# Their tallies, as if counted when they happened (a slot of no session).
COUNT_FILLED = text('''
INSERT INTO job_counts (kind, event, slot, total, seconds)
SELECT kind, status, 15, count(*), 0 FROM jobs GROUP BY kind, status
ON CONFLICT (kind, event, slot) DO NOTHING
''')
NEWEST = text('SELECT coalesce(max(id), 0) FROM jobs')
AFTER = text('SELECT count(*) FROM jobs WHERE id > :base')
SIZE = text("SELECT pg_total_relation_size('jobs')")
DROP_FINISHED_INDEX = text('DROP INDEX ix_jobs_finished')
CREATE_FINISHED_INDEX = text(f'CREATE INDEX ix_jobs_finished ON jobs (kind, status, id) '
                             f'WHERE {FINISHED}')


def fill(conn, first, last, rows):
    """Jobs `first` to `last` of a history of `rows` (not committed)."""
    with translate():
        conn.execute(FILL, {'first': first, 'last': last, 'rows': rows})


def count_filled(conn):
    with translate():
        conn.execute(COUNT_FILLED)


def newest_id(conn):
    with translate():
        return conn.execute(NEWEST).scalar()


def count_after(conn, base):
    """Jobs recorded after the job `base`."""
    with translate():
        return conn.execute(AFTER, {'base': base}).scalar()


def size_bytes(conn):
    """The jobs table with its indexes and TOAST, in bytes."""
    with translate():
        return conn.execute(SIZE).scalar()


def vacuum_analyze(engine):
    with translate(), engine.connect() as conn:
        conn.execution_options(isolation_level='AUTOCOMMIT').execute(text('VACUUM ANALYZE jobs'))


def drop_finished_index(conn):
    with translate():
        conn.execute(DROP_FINISHED_INDEX)


def create_finished_index(conn):
    with translate():
        conn.execute(CREATE_FINISHED_INDEX)
