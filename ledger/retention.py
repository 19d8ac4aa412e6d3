"""Retention: finished jobs deleted once older than their outcome's age, in
small batches (each its own short transaction: row locks on a few thousand
rows for a few milliseconds, no table rewrite; the space is reused after
autovacuum). Only finished jobs (succeeded, failed, cancelled) are ever
deleted, and a job whose idempotency key is still within its window is kept.

Each batch looks at the next `batch` entries of ix_jobs_finished for one
kind and outcome, oldest id first, and deletes those finished long enough
ago; ids grow with acceptance time, so a look that finds no job accepted
before the cut ends the walk (a job retried and finished lately is passed
over, not a stop). A pass costs the same whatever the ledger holds."""
import time

from sqlalchemy import text

from ledger.model import Status
from ledger.reads import FINISHED_KINDS
from pg.exceptions import translate

KINDS = text(f'WITH {FINISHED_KINDS} SELECT kind FROM kinds WHERE kind IS NOT NULL')

# The look reads ix_jobs_finished alone (an index-only scan): asked for the
# rows themselves, the planner took the primary key in id order and filtered
# out every other kind and outcome (400 ms for a batch at 10M rows, 3M rows
# passed over). The status and age are checked again on the locked row:
# nothing unfinished (a failed job retried meanwhile) is ever deleted.
PRUNE = text('''
WITH look AS (
    SELECT id FROM jobs WHERE kind = :kind AND status = :status AND id > :after
    ORDER BY id LIMIT :batch),
seen AS (
    SELECT jobs.id, finished_at < now() - make_interval(secs => :age) AS old,
           created_at < now() - make_interval(secs => :age) AS early,
           idempotency_key IS NULL OR created_at < now() - make_interval(secs => :key_window)
               AS key_expired
    FROM jobs JOIN look ON jobs.id = look.id),
doomed AS (
    SELECT id FROM jobs WHERE id IN (SELECT id FROM seen WHERE old AND key_expired)
    FOR UPDATE SKIP LOCKED),
gone AS (
    DELETE FROM jobs USING doomed WHERE jobs.id = doomed.id AND jobs.status = :status
      AND jobs.finished_at < now() - make_interval(secs => :age)
    RETURNING jobs.id)
SELECT (SELECT count(*) FROM gone), (SELECT max(id) FROM look),
       (SELECT count(*) FROM seen WHERE early)
''')


def prune(session, ages, key_window, batch=2000, budget_seconds=None, on_batch=None):
    """Delete finished jobs older than their outcome's age, `ages` {status:
    seconds}, `batch` at a time, each batch committed; stop after
    `budget_seconds` if given. A job with an idempotency key younger than
    `key_window` seconds stays. `on_batch(deleted, seconds)` hears of each
    batch (the benchmark). Returns {status: jobs deleted}."""
    started = time.monotonic()
    deleted = {}
    with translate():
        kinds = session.execute(KINDS).scalars().all()
        session.commit()
    for status, age in ages.items():
        status = Status(status)
        assert status in Status.finished()
        deleted[status.value] = 0
        for kind in kinds:
            after = 0
            while True:
                if budget_seconds is not None and time.monotonic() - started > budget_seconds:
                    return deleted
                batch_started = time.monotonic()
                with translate():
                    count, last, early = session.execute(PRUNE, {
                        'kind': kind, 'status': status, 'after': after, 'age': age,
                        'key_window': key_window, 'batch': batch}).one()
                    session.commit()
                deleted[status.value] += count
                if on_batch is not None:
                    on_batch(count, time.monotonic() - batch_started)
                if not early:  # accepted too late, and so is every job after them
                    break
                after = last
    return deleted
