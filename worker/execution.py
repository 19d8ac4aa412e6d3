"""How the worker runs the jobs of one message: claim them, then apply their
effects and complete them in one transaction; retry transient failures, fail
permanent ones."""
import logging
import random

from flask import current_app

import ledger
from ledger import Status
from pg.exceptions import PgError, TransientError, translate
from service.logs import job_request_id
from tasks import REGISTRY, JobFailed
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
    locked = ledger.lock_running(session, [job_id])
    if not locked:
        return False
    [(_, kind_name, payload)] = locked
    kind = REGISTRY.get(kind_name)
    if kind is None:
        raise JobFailed(f'unknown job kind {kind_name}')
    ledger.complete(session, [(job_id, kind.handler(payload))])
    return True


def run_job(task, job_ids):
    """Run the job `job_ids` (an id, or a list of ids applied together) once,
    whatever number of times the message is delivered.

    Returns what happened (a status, 'duplicate', or a count for a group);
    raises celery's Retry to try the message again later."""
    config = current_app.config
    session = current_app.extensions['pg'].pool.connection().session
    try:
        return _run_group(task, job_ids if isinstance(job_ids, list) else [job_ids],
                          session, config)
    except TransientError as error:
        # The database went away before the outcome was committed: nothing of this
        # attempt stays, so try again later (without counting it) rather than fail
        # the task, whose message Celery would ack, leaving the job to the sweep.
        _rollback(session)
        raise task.retry(countdown=backoff(task.request.retries + 1, config), exc=error)


def _retry_later(task, alone):
    """How a job that met a transient error is tried again: by retrying the
    task's message when it is the message's only job, else by a message of its own."""
    def retry(job_id, countdown, error):
        if alone:
            raise task.retry(countdown=countdown, exc=error)
        task.apply_async(args=[job_id], countdown=countdown)
    return retry


def owner_key():
    """This worker process's owner key (ledger.owners): its advisory lock,
    held for the process's life, tells the sweep the process is alive."""
    owner = current_app.extensions.get('ledger_owner')
    if owner is None:
        owner = current_app.extensions['ledger_owner'] = ledger.Owner(
            current_app.extensions['pg'].pool.connection().engine.url)
    return owner.current()


def _run_group(task, job_ids, session, config):
    """Claim the jobs (committed: a dead worker's attempts are counted), then
    apply them all in one transaction; if that fails, each in its own."""
    claimed = ledger.claim(session, job_ids, owner_key())
    ready = [job_id for job_id, (attempt, _) in sorted(claimed.items())
             if attempt <= config['WORKER_MAX_ATTEMPTS']]
    for job_id in claimed.keys() - set(ready):
        _attempt(job_id, *claimed[job_id], session, config, retry=None)  # fails it
    if not ready:
        return 'duplicate' if not claimed else Status.FAILED.value
    try:
        return f'{run_batch(session, ready)} applied'
    except BatchAborted as error:
        request_ids = sorted({claimed[j][1] for j in ready if claimed[j][1] is not None})
        log.info('group of %d jobs aborted (%s): applying them one by one', len(ready), error,
                 extra={'job_ids': ready, 'request_ids': request_ids})
    retry = _retry_later(task, alone=len(ready) == 1 and len(job_ids) == 1)
    for job_id in ready:
        _attempt(job_id, *claimed[job_id], session, config, retry)
    return f'{len(ready)} applied one by one'


def _attempt(job_id, attempt, request_id, session, config, retry):
    """Apply a claimed job in its own transaction and record its outcome; the
    log lines meanwhile carry the job's request id."""
    token = job_request_id.set(request_id)
    try:
        return _attempt_alone(job_id, attempt, session, config, retry)
    finally:
        job_request_id.reset(token)


def _attempt_alone(job_id, attempt, session, config, retry):
    if attempt > config['WORKER_MAX_ATTEMPTS']:
        # Earlier attempts died with their worker (killed, out of memory): stop here.
        ledger.fail(session, job_id, f'gave up after {attempt - 1} attempts: worker lost')
        log.warning('job %s failed: gave up after %d attempts: worker lost', job_id, attempt - 1,
                    extra={'job_id': job_id})
        return Status.FAILED.value
    try:
        applied = _apply(session, job_id)
        with translate():
            session.commit()
        return Status.SUCCEEDED.value if applied else 'duplicate'
    except TransientError as error:
        _rollback(session)
        if attempt < config['WORKER_MAX_ATTEMPTS']:
            ledger.requeue(session, job_id, error)
            delay = backoff(attempt, config)
            log.info('job %s: attempt %d met %s: retried in %.1f s', job_id, attempt,
                     type(error).__name__, delay, extra={'job_id': job_id})
            retry(job_id, delay, error)
            return Status.QUEUED.value
        ledger.fail(session, job_id, f'gave up after {attempt} attempts: {error}')
        log.warning('job %s failed: gave up after %d attempts: %s', job_id, attempt,
                    type(error).__name__, extra={'job_id': job_id})
        return Status.FAILED.value
    except (JobFailed, PgError) as error:
        # The job's own fault (a business rule, a missing row, a constraint):
        # any other exception is a bug of its handler, below.
        _rollback(session)
        ledger.fail(session, job_id, error)
        log.warning('job %s failed: %s', job_id, _reason(error), extra={'job_id': job_id})
        return Status.FAILED.value
    except Exception as error:
        # The runner is the boundary: a bug in a handler fails its job, never the worker.
        _rollback(session)
        log.exception('job %s: handler error', job_id, extra={'job_id': job_id})
        ledger.fail(session, job_id, f'internal error: {type(error).__name__}')
        return Status.FAILED.value


def _reason(error):
    # The reason the ledger keeps, in one line: no SQL or parameters of a driver's error.
    return str(error).splitlines()[0][:300] if str(error) else type(error).__name__


def _rollback(session):
    try:
        with translate():
            session.rollback()
    except PgError:
        pass  # a lost connection has nothing left to roll back
