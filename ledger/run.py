"""The worker's changes of a job: claim it, lock it, complete it with its
result in the transaction of its effect, fail it, or queue it for its next
attempt. The caller's session holds the transaction; each function says
whether it commits."""
import json
from typing import NamedTuple

from sqlalchemy import text

from ledger import counts
from ledger.model import IN_IDS, Status, in_ids
from pg.exceptions import translate

# The rows are taken in the order of the primary key's scan, the ids' order
# (the ids sorted): two deliveries of one group wait for one another rather
# than deadlock; should a plan ever take them in another order, PostgreSQL
# fails one of the two, retried as any transient error. A cancelled
# job is never claimed (its message may arrive after the cancel), nor a
# scheduled one (a message of an earlier attempt). "Not finished or waiting"
# rather than "queued or running": worded so, the condition cannot
# lead the planner to the partial index of unfinished jobs (which under a
# backlog holds them all) instead of the primary key. The claim names its
# owner (ledger.owners); an attempt past the first is counted as a retry.
# Its commit does not wait for the disk (set here, where a SET LOCAL of its
# own cost a round trip): a claim lost in a crash only undercounts attempts,
# while the effect and the completion are committed durably. The payloads
# come back with it as text (see payloads()), so the lock before the effect
# reads no more than the status.
CLAIM = text(f'''
WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true)),
claimed AS (
    UPDATE jobs SET status = :running, attempts = attempts + 1, updated_at = now(),
                    claimed_by = :owner
    WHERE {IN_IDS} AND status NOT IN (:succeeded, :failed, :cancelled, :scheduled)
    RETURNING id, attempts, request_id, kind, CAST(payload AS text) AS payload),
tally AS ({counts.tally('claimed', 'retried', 'WHERE attempts > 1')})
SELECT id, attempts, request_id, kind, payload FROM claimed, async_commit
''')

# Locks the rows in id order (no deadlock between two groups); the status is
# checked once the lock is held (a duplicate delivery may have finished them),
# and in Python: a status condition here could lead the planner to the
# partial index of unfinished jobs rather than the primary key. The payloads
# came with the claim.
LOCK = text(f'''
SELECT id, status FROM jobs WHERE {IN_IDS} ORDER BY id FOR UPDATE
''')

_SECONDS = "date_part('epoch', jobs.finished_at - jobs.created_at) AS seconds"

# The jobs are found by their ids and their range (IN_IDS), each one's result
# looked up by its id in one JSON object (no join): joined to their results,
# a group of 10 in a ledger of 16,000 rows was read by a scan of the whole
# table (the planner guesses 100 results; 3.5 ms of PostgreSQL's CPU for
# what the key does in 0.2), and with IN_IDS added to the join, a group of
# 500 unpacked its results once for each of its jobs (50 ms against 21).

COMPLETE = text(f'''
WITH completed AS (
    UPDATE jobs SET status = :succeeded, result = CAST(:done AS jsonb) -> CAST(id AS text),
                    error = NULL, updated_at = now(), finished_at = clock_timestamp()
    WHERE {IN_IDS}
    RETURNING jobs.kind, {_SECONDS}),
tally AS ({counts.tally('completed', 'succeeded')})
SELECT count(*) FROM completed
''')

FAIL = text(f'''
WITH failed AS (
    UPDATE jobs SET status = :failed, error = :error, result = NULL,
                    updated_at = now(), finished_at = clock_timestamp()
    WHERE id = :id AND status = :running
    RETURNING jobs.kind, {_SECONDS}),
tally AS ({counts.tally('failed', 'failed')})
SELECT count(*) FROM failed
''')

REQUEUE = text('''
UPDATE jobs SET status = :queued, error = :error, updated_at = now()
WHERE id = :id AND status = :running
''')

MAX_ERROR = 2000


class Claim(NamedTuple):
    """A claimed job: its attempt's number (1 for the first), request id,
    kind, and payload as JSON text (parsed by each attempt: a handler may
    change the dict it is given; see payloads())."""
    attempt: int
    request_id: str | None
    kind: str
    payload: str


def payloads(claims):
    """The payloads of the Claims `claims`, parsed, in order: fresh dicts,
    in one json.loads (the driver's jsonb loader, called row by row, cost a
    group of 500 jobs more than its own statement)."""
    return json.loads('[' + ','.join(claim.payload for claim in claims) + ']')


def claim(session, job_ids, owner=None):
    """Mark the queued or running jobs among `job_ids` running, claimed by
    `owner` (the advisory lock key of the worker process, ledger.owners), and
    count the attempt; committed at once (on a Session, or on a Connection
    that commits each statement itself), so a worker that dies mid-job leaves
    a trace. Returns {job id: Claim}; a job unknown, finished already (a
    duplicate delivery), cancelled or scheduled is left out."""
    with translate():
        claimed = session.execute(CLAIM, {
            **in_ids(job_ids), 'running': Status.RUNNING, 'owner': owner,
            'succeeded': Status.SUCCEEDED, 'failed': Status.FAILED,
            'cancelled': Status.CANCELLED, 'scheduled': Status.SCHEDULED}).all()
        session.commit()
    return {job_id: Claim(attempt, request_id, kind, payload)
            for job_id, attempt, request_id, kind, payload in claimed}


def lock_running(session, job_ids):
    """Lock the jobs' rows (until the caller's transaction ends) and return
    the ids of those still running, in order: the others were finished
    meanwhile (a duplicate delivery)."""
    with translate():
        rows = session.execute(LOCK, in_ids(job_ids)).all()  # at once: row by row cost 2x
    return [job_id for job_id, status in rows if status == Status.RUNNING]


def complete(session, results):
    """Mark locked running jobs succeeded with their results, [(id, result)],
    in the caller's transaction (not committed): with their effects."""
    if not results:
        return
    with translate():
        session.execute(COMPLETE, {**in_ids(job_id for job_id, _ in results),
                                   'succeeded': Status.SUCCEEDED,
                                   'done': json.dumps(dict(results))})


def fail(session, job_id, error):
    """Fail a running job with the reason `error`; committed. False if it was
    not running (finished meanwhile)."""
    return _settle(session, FAIL, job_id, error)


def requeue(session, job_id, error):
    """Queue a running job for its next attempt after a transient `error`
    (kept as its note until then); committed. False if it was not running."""
    return _settle(session, REQUEUE, job_id, error)


def _settle(session, statement, job_id, error):
    with translate():
        result = session.execute(statement, {
            'id': job_id, 'error': str(error)[:MAX_ERROR], 'running': Status.RUNNING,
            'queued': Status.QUEUED, 'failed': Status.FAILED})
        done = result.scalar() if result.returns_rows else result.rowcount
        session.commit()
    return bool(done)
