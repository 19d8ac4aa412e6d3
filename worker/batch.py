"""Many claimed jobs in one transaction (group commit).

One SELECT locks the jobs' rows, still running; their effects run kind by
kind (one multi-row INSERT where the kind offers it); their completion is one
UPDATE; one COMMIT makes effects and completions durable together, so
exactly-once holds job by job as on the single path. Optimistic: if anything
goes wrong, the whole transaction is rolled back and the caller runs each job
alone, to retry or fail it with its own reason.
"""
import json
import logging

from sqlalchemy import text

from pg.exceptions import PgError, translate
from tasks import REGISTRY, JobFailed
from tasks.ledger import RUNNING, SUCCEEDED, id_array

log = logging.getLogger(__name__)

# Locks the rows in id order (no deadlock between two groups); the status is
# checked once the lock is held (a duplicate delivery may have finished them),
# and in Python: a status condition here could lead the planner to the
# partial index of unfinished jobs rather than the primary key.
LOCK = '''
SELECT id, kind, payload, status FROM jobs WHERE id = ANY(CAST(:ids AS bigint[]))
ORDER BY id FOR UPDATE
'''

COMPLETE = '''
UPDATE jobs SET status = :succeeded, result = done.result, error = NULL,
                updated_at = now(), finished_at = clock_timestamp()
FROM (SELECT CAST(e->>0 AS bigint) AS id, e->1 AS result
      FROM jsonb_array_elements(CAST(:done AS jsonb)) AS d(e)) AS done
WHERE jobs.id = done.id
'''


class BatchAborted(Exception):
    """A job of the batch could not be applied with the others."""


def run_batch(session, job_ids):
    """Apply the claimed (running) jobs `job_ids` in one transaction; return how
    many were applied (the others were finished meanwhile). Raises
    BatchAborted, everything rolled back."""
    try:
        with translate():
            locked = session.execute(text(LOCK), {'ids': id_array(job_ids)}).fetchall()
        by_kind = {}
        for job_id, kind_name, payload, status in locked:
            if status == RUNNING:
                by_kind.setdefault(kind_name, []).append((job_id, dict(payload)))
        results = []
        for kind_name, jobs in by_kind.items():
            kind = REGISTRY.get(kind_name)
            if kind is None:
                raise JobFailed(f'unknown job kind {kind_name}')
            outcomes = kind.apply_many([payload for _, payload in jobs])
            results.extend([job_id, out] for (job_id, _), out in zip(jobs, outcomes))
        with translate():
            if results:
                session.execute(text(COMPLETE), {'succeeded': SUCCEEDED,
                                                 'done': json.dumps(results)})
            session.commit()
        return len(results)
    except Exception as error:
        # Whatever it was (a refused job, a lost lock, a bug), the single path
        # will say which job and why: undo everything and let it.
        try:
            with translate():
                session.rollback()
        except PgError:
            pass
        raise BatchAborted(f'{type(error).__name__}: {error}') from error
