"""Many claimed jobs in one transaction (group commit).

Their effects run kind by kind (one multi-row INSERT where the kind offers
it) from the payloads their claim returned; their completion is one UPDATE
of the jobs still running; one COMMIT makes effects and completions durable
together, so exactly-once holds job by job as on the single path.

Optimistic: the rows are not locked first (a lock per row is a write per
row, and a statement). The completion locks them and counts them: if one
was finished meanwhile (a duplicate delivery came first), cancelled or
swept, or if anything else goes wrong, the whole transaction is rolled back
and the caller runs each job alone, to retry or fail it with its own reason.
"""
import ledger
from pg.exceptions import PgError, translate
from tasks import REGISTRY, JobFailed


class BatchAborted(Exception):
    """A job of the batch could not be applied with the others."""


def run_batch(session, claimed):
    """Apply the claimed jobs `claimed` ({id: ledger.Claim}) in one
    transaction. Raises BatchAborted, everything rolled back, unless all of
    them were applied."""
    try:
        by_kind = {}
        for job_id in sorted(claimed):
            by_kind.setdefault(claimed[job_id].kind, []).append((job_id, claimed[job_id].payload))
        results = []
        for kind_name, jobs in by_kind.items():
            kind = REGISTRY.get(kind_name)
            if kind is None:
                raise JobFailed(f'unknown job kind {kind_name}')
            outcomes = kind.apply_many([payload for _, payload in jobs])
            results.extend((job_id, out) for (job_id, _), out in zip(jobs, outcomes))
        completed = ledger.complete(session, results)
        if completed != len(results):
            raise BatchAborted(f'{len(results) - completed} of the jobs no longer running')
        with translate():
            session.commit()
    except Exception as error:
        # Whatever it was (a refused job, a lost lock, a bug), the single path
        # will say which job and why: undo everything and let it.
        try:
            with translate():
                session.rollback()
        except PgError:
            pass
        if isinstance(error, BatchAborted):
            raise
        raise BatchAborted(f'{type(error).__name__}: {error}') from error
