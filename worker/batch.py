"""Many jobs of one message in one transaction (group commit).

The jobs are claimed by one UPDATE, which also locks their rows; their
effects run kind by kind (one multi-row INSERT where the kind offers it); their completion is one more UPDATE; one
COMMIT makes effects and completions durable together, so exactly-once holds
job by job as on the single path. Optimistic: if anything goes wrong, the
whole transaction is rolled back and each job is published again alone, for
the single path to run, retry or fail it with its own reason.
"""
import json
import logging

from sqlalchemy import text

from pg.exceptions import PgError, translate
from tasks import REGISTRY, JobFailed
from tasks.ledger import QUEUED, RUNNING, SUCCEEDED

log = logging.getLogger(__name__)

# Locks the rows in id order (no deadlock between two batches) and skips
# jobs already finished (a duplicate delivery).
CLAIM = '''
UPDATE jobs SET status = :running, attempts = attempts + 1, updated_at = now()
WHERE id IN (SELECT id FROM jobs WHERE id = ANY(:ids) AND status IN (:queued, :running)
             ORDER BY id FOR UPDATE)
RETURNING id, kind, payload
'''

COMPLETE = '''
UPDATE jobs SET status = :succeeded, result = done.result, error = NULL,
                updated_at = now(), finished_at = clock_timestamp()
FROM (SELECT unnest(CAST(:ids AS bigint[])) AS id,
             CAST(unnest(CAST(:results AS text[])) AS jsonb) AS result) AS done
WHERE jobs.id = done.id
'''


class BatchAborted(Exception):
    """A job of the batch could not be applied with the others."""


def run_batch(session, job_ids):
    """Apply the jobs `job_ids` in one transaction; return how many were applied
    (the others were finished already). Raises BatchAborted, everything rolled back."""
    try:
        with translate():
            claimed = session.execute(text(CLAIM), {
                'ids': list(job_ids), 'queued': QUEUED, 'running': RUNNING}).fetchall()
        by_kind = {}
        for job_id, kind_name, payload in sorted(claimed):
            by_kind.setdefault(kind_name, []).append((job_id, dict(payload)))
        results = []
        for kind_name, jobs in by_kind.items():
            kind = REGISTRY.get(kind_name)
            if kind is None:
                raise JobFailed(f'unknown job kind {kind_name}')
            outcomes = kind.apply_many([payload for _, payload in jobs])
            results.extend((job_id, json.dumps(out)) for (job_id, _), out in zip(jobs, outcomes))
        with translate():
            if results:
                session.execute(text(COMPLETE), {
                    'succeeded': SUCCEEDED, 'ids': [r[0] for r in results],
                    'results': [r[1] for r in results]})
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
