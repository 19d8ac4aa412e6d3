"""How the worker runs one job: claim it, then apply its effect and complete
it in one transaction; retry transient failures, fail permanent ones."""
import logging
import random

from flask import current_app

from pg.exceptions import PgError, TransientError, translate
from tasks import REGISTRY, JobFailed
from tasks.ledger import FAILED, QUEUED, RUNNING, SUCCEEDED, Job, claim, settle
from worker.batch import BatchAborted, run_batch

log = logging.getLogger(__name__)


def backoff(attempt, config):
    """Exponential delay before attempt `attempt + 1`, capped, jittered over its upper half."""
    ceiling = min(config['WORKER_RETRY_MAX_SECONDS'],
                  config['WORKER_RETRY_BASE_SECONDS'] * 2 ** max(attempt - 1, 0))
    return random.uniform(ceiling / 2, ceiling)


def _apply(session, job_id):
    """Lock the job, apply its effect, mark it succeeded; the caller commits.
    Returns False when the job was finished meanwhile (a duplicate)."""
    job = Job.objects.get_for_update(id=job_id, nowait=False)
    if job.status != RUNNING:
        return False
    kind = REGISTRY.get(job.kind)
    if kind is None:
        raise JobFailed(f'unknown job kind {job.kind}')
    result = kind.handler(dict(job.payload))
    settle(session, job_id, SUCCEEDED, result=result)
    return True


def run_job(task, job_id):
    """Run job `job_id` (or a list of job ids, together) once, whatever number
    of times it is delivered.

    Returns the job's final status, or 'duplicate' when it was already finished;
    raises celery's Retry to try again later."""
    config = current_app.config
    session = current_app.extensions['pg'].pool.connection().session
    if isinstance(job_id, list):
        return _run_many(task, job_id, session)
    try:
        return _run(task, job_id, session, config)
    except TransientError as error:
        # The database went away before the outcome was committed: nothing of this
        # attempt stays, so try again later (without counting it) rather than fail
        # the task, whose message Celery would ack, leaving the job to the sweep.
        _rollback(session)
        raise task.retry(countdown=backoff(task.request.retries + 1, config), exc=error)


def _run(task, job_id, session, config):
    attempt = claim(session, job_id)
    if attempt is None:
        return 'duplicate'
    if attempt > config['WORKER_MAX_ATTEMPTS']:
        # Earlier attempts died with their worker (killed, out of memory): stop here.
        _record(session, job_id, FAILED, f'gave up after {attempt - 1} attempts: worker lost')
        return FAILED
    try:
        applied = _apply(session, job_id)
        with translate():
            session.commit()
        return SUCCEEDED if applied else 'duplicate'
    except TransientError as error:
        _rollback(session)
        if attempt < config['WORKER_MAX_ATTEMPTS']:
            _record(session, job_id, QUEUED, error)
            raise task.retry(countdown=backoff(attempt, config), exc=error)
        _record(session, job_id, FAILED, f'gave up after {attempt} attempts: {error}')
        return FAILED
    except (JobFailed, PgError, ValueError) as error:
        _rollback(session)
        _record(session, job_id, FAILED, error)
        return FAILED
    except Exception as error:
        # The runner is the boundary: a bug in a handler fails its job, never the worker.
        _rollback(session)
        log.exception('job %s: handler error', job_id)
        _record(session, job_id, FAILED, f'internal error: {type(error).__name__}')
        return FAILED


def _run_many(task, job_ids, session):
    try:
        return f'{run_batch(session, job_ids)} applied'
    except BatchAborted as error:
        log.warning('batch of %d jobs aborted (%s): running them one by one', len(job_ids), error)
        from worker import publish
        publish(task.app, job_ids, task.name, per_message=1)
        return 'split'


def _rollback(session):
    try:
        with translate():
            session.rollback()
    except PgError:
        pass  # a lost connection has nothing left to roll back


def _record(session, job_id, status, error):
    """Write the job's outcome; raises TransientError if the database is away."""
    settle(session, job_id, status, error=str(error)[:2000])
    with translate():
        session.commit()
