"""The database's floor, for the benchmark only: the ledger's work for a
batch of genre.create jobs done by PostgreSQL alone.

The same row writes and commits as the service's path for a group of jobs,
in three transactions: record them (committed durably, as before a 202),
claim them (committed without waiting for the disk, as the worker's claim),
then insert their genres and complete them with their results (one durable
commit, as the worker's group). Each is one statement over the whole batch:
the payloads go in as one JSON document, nothing per job comes back, and no
Python runs per job.

The cheapest shape found: the batch is one range of ids (its INSERT alone
on the table, checked) found again by the primary key's range, and its
genres one range too, so the n-th job's result is the n-th genre. The
service cannot count on either (groups interleave), nor skip the row lock
and the rows sent back to the worker; that is part of what the floor leaves
out. Nothing but the benchmark calls it, on its own database (the `genre`
table of tasks/music.py is the effect).
"""
from sqlalchemy import text

from ledger.model import Status

RECORD = text('''
WITH new AS (
  INSERT INTO jobs (kind, payload, status, attempts)
  SELECT :kind, p, :queued, 0
  FROM jsonb_array_elements(CAST(:payloads AS jsonb)) WITH ORDINALITY AS t(p, n)
  ORDER BY n
  RETURNING id)
SELECT min(id), max(id), count(*) FROM new
''')

ASYNC_COMMIT = text('SET LOCAL synchronous_commit TO off')

CLAIM = text('''
UPDATE jobs SET status = :running, attempts = attempts + 1, updated_at = now()
WHERE id BETWEEN :first AND :last AND status NOT IN (:succeeded, :failed)
''')

# "Not queued or finished" rather than "running": the partial index of
# unfinished jobs (its dead entries too) is then no way in, the range is.
APPLY = text('''
WITH made AS (
  INSERT INTO genre (name, description)
  SELECT payload->>'name', payload->>'description' FROM jobs
  WHERE id BETWEEN :first AND :last AND status NOT IN (:queued, :succeeded, :failed)
  ORDER BY id
  RETURNING id)
UPDATE jobs SET status = :succeeded,
                result = jsonb_build_object('id', id - :first + (SELECT min(id) FROM made)),
                error = NULL, updated_at = now(), finished_at = clock_timestamp()
WHERE id BETWEEN :first AND :last AND status NOT IN (:queued, :succeeded, :failed)
''')


class FloorError(RuntimeError):
    """The floor's batch did not go as its shape assumes (another writer?)."""


def genre_batch(conn, payloads):
    """Record, claim, apply and complete the genre.create jobs of `payloads`
    (one JSON array, as text) on the Connection `conn`, in three committed
    transactions; return how many were completed."""
    first, last, count = conn.execute(RECORD, {'kind': 'genre.create', 'payloads': payloads,
                                               'queued': Status.QUEUED}).one()
    if last - first + 1 != count:
        raise FloorError('the batch\'s ids are not one range: is another writer on the table?')
    conn.commit()
    span = {'first': first, 'last': last, 'running': Status.RUNNING, 'queued': Status.QUEUED,
            'succeeded': Status.SUCCEEDED, 'failed': Status.FAILED}
    conn.execute(ASYNC_COMMIT)
    conn.execute(CLAIM, span)
    conn.commit()
    done = conn.execute(APPLY, span).rowcount
    conn.commit()
    if done != count:
        raise FloorError(f'{done} of {count} jobs completed')
    return done
