"""Retention: finished jobs deleted once older than their outcome's age, in
small batches (each its own short transaction: row locks on a few thousand
rows for a few milliseconds, no table rewrite; the space is reused after
autovacuum). Only succeeded and failed jobs are ever deleted, and a job
whose idempotency key is still within its window is kept.

Each batch walks ix_jobs_finished for one kind and outcome from its oldest
id, up to the newest id created before the cut (found by a binary search of
the primary key: ids grow with time), so a pass costs the same whatever
the ledger holds."""
import time

from sqlalchemy import text

from ledger.model import Status
from pg.exceptions import translate

KINDS = text('''
WITH RECURSIVE kinds(kind) AS (
    SELECT min(kind) FROM jobs WHERE status IN ('succeeded', 'failed')
    UNION ALL
    SELECT (SELECT min(kind) FROM jobs WHERE status IN ('succeeded', 'failed') AND kind > kinds.kind)
    FROM kinds WHERE kinds.kind IS NOT NULL)
SELECT kind FROM kinds WHERE kind IS NOT NULL
''')

BOUNDS = text('SELECT min(id), max(id) FROM jobs')
CREATED_FROM = text('SELECT created_at < now() - make_interval(secs => :age) '
                    'FROM jobs WHERE id >= :id ORDER BY id LIMIT 1')

# The status is checked again on the locked row: nothing unfinished (a
# failed job retried meanwhile) is ever deleted.
PRUNE = text('''
DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs
    WHERE kind = :kind AND status = :status AND id <= :upto
      AND finished_at < now() - make_interval(secs => :age)
      AND (idempotency_key IS NULL OR created_at < now() - make_interval(secs => :key_window))
    ORDER BY id LIMIT :batch
    FOR UPDATE SKIP LOCKED)
  AND status = :status
''')


def newest_before(conn, age):
    """About the newest job id created more than `age` seconds ago (0: none):
    a binary search on the primary key, ids growing with creation time."""
    with translate():
        low, high = conn.execute(BOUNDS).one()
        if low is None or not conn.execute(CREATED_FROM, {'id': low, 'age': age}).scalar():
            return 0
        while low < high:  # invariant: the job at or after `low` is old enough
            middle = (low + high + 1) // 2
            if conn.execute(CREATED_FROM, {'id': middle, 'age': age}).scalar():
                low = middle
            else:
                high = middle - 1
    return low


def prune(session, ages, key_window, batch=2000, budget_seconds=None):
    """Delete finished jobs older than their outcome's age, `ages` {status:
    seconds}, `batch` at a time, each batch committed; stop after
    `budget_seconds` if given. A job with an idempotency key younger than
    `key_window` seconds stays. Returns {status: jobs deleted}."""
    started = time.monotonic()
    deleted = {}
    with translate():
        kinds = session.execute(KINDS).scalars().all()
        session.commit()
    for status, age in ages.items():
        status = Status(status)
        assert status in Status.finished()
        with translate():
            upto = newest_before(session, age)
            session.commit()
        deleted[status.value] = 0
        for kind in kinds:
            while upto:
                if budget_seconds is not None and time.monotonic() - started > budget_seconds:
                    return deleted
                with translate():
                    count = session.execute(PRUNE, {
                        'kind': kind, 'status': status, 'upto': upto, 'age': age,
                        'key_window': key_window, 'batch': batch}).rowcount
                    session.commit()
                deleted[status.value] += count
                if count < batch:
                    break
    return deleted
