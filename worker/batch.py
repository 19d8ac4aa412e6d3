"""Many claimed jobs in one transaction (group commit).

Their rows are locked, still running; their effects run kind by kind (one
multi-row INSERT where the kind offers it); their completion is one UPDATE;
one COMMIT makes effects and completions durable together, so exactly-once
holds job by job as on the single path. Optimistic: if anything goes wrong,
the whole transaction is rolled back and the caller runs each job alone, to
retry or fail it with its own reason.
"""
import ledger
from pg.exceptions import PgError, translate
from tasks import REGISTRY, JobFailed


class BatchAborted(Exception):
    """A job of the batch could not be applied with the others."""


def run_batch(session, claimed):
    """Apply the claimed jobs `claimed` ({id: ledger.Claim}) in one
    transaction; return how many were applied (the others were finished
    meanwhile). Raises BatchAborted, everything rolled back."""
    try:
        by_kind = {}
        running = ledger.lock_running(session, list(claimed))
        for job_id, payload in zip(running, ledger.payloads(claimed[j] for j in running)):
            by_kind.setdefault(claimed[job_id].kind, []).append((job_id, payload))
        results = []
        for kind_name, jobs in by_kind.items():
            kind = REGISTRY.get(kind_name)
            if kind is None:
                raise JobFailed(f'unknown job kind {kind_name}')
            outcomes = kind.apply_many([payload for _, payload in jobs])
            results.extend((job_id, out) for (job_id, _), out in zip(jobs, outcomes))
        ledger.complete(session, results)
        with translate():
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
