"""How the worker runs the jobs of one message: claim them, then apply their
effects and complete them in one transaction; retry transient failures, fail
permanent ones. A kind's policy (tasks.kinds: max_attempts, timeout) bounds
each job; a handler's RetryLater puts its job back to wait in the ledger."""
import logging
import random

from flask import current_app

import ledger
from ledger import Status
from pg.exceptions import PgError, QueryCanceledError, TransientError, translate
from pg.pool import on_live_connection
from service import brokers
from service.logs import job_request_id
from tasks import REGISTRY, JobFailed, JobTimeout, RetryLater
from worker.batch import BatchAborted, run_batch
from worker.time_limit import time_limit

log = logging.getLogger(__name__)

SUCCEEDED, FAILED, QUEUED, SCHEDULED, DUPLICATE = Status.SUCCEEDED.value, \
    Status.FAILED.value, Status.QUEUED.value, Status.SCHEDULED.value, 'duplicate'
CLAIMS_ENGINE = 'claims_engine'


class JobsFailed(Exception):
    """Every job of the message failed (their outcome is committed in the
    ledger). Raised so that Celery, and Flower, record the task as FAILURE
    with the reason; the task declares it in `throws` (logged without a
    traceback), and with acks_on_failure_or_timeout the message is acked, not
    delivered again: exactly-once holds."""


def _report(outcomes, reasons):
    """The task's result: the count of the jobs per outcome (succeeded, failed,
    queued again, scheduled again, duplicate: finished by an earlier delivery),
    as Flower shows it. Raises JobsFailed, with the first reasons, when every
    job that ran failed."""
    counts = {outcome: outcomes.count(outcome)
              for outcome in (SUCCEEDED, FAILED, QUEUED, SCHEDULED, DUPLICATE)
              if outcome in outcomes}
    if counts.get(FAILED) and not (counts.get(SUCCEEDED) or counts.get(QUEUED)
                                   or counts.get(SCHEDULED)):
        first = '; '.join(f'job {job_id}: {reason}' for job_id, reason in reasons[:3])
        more = f' (and {len(reasons) - 3} more)' if len(reasons) > 3 else ''
        raise JobsFailed(f'{counts[FAILED]} failed: {first}{more}')
    return counts


def backoff(attempt, config):
    """Exponential delay before attempt `attempt + 1`, capped, jittered over
    its upper half (in whole seconds on RabbitMQ: brokers.countdown)."""
    ceiling = min(config['WORKER_RETRY_MAX_SECONDS'],
                  config['WORKER_RETRY_BASE_SECONDS'] * 2 ** max(attempt - 1, 0))
    return brokers.countdown(config, random.uniform(ceiling / 2, ceiling))


def _kind(kind_name):
    kind = REGISTRY.get(kind_name)
    if kind is None:
        raise JobFailed(f'unknown job kind {kind_name}')
    return kind


def _max_attempts(kind_name, config):
    kind = REGISTRY.get(kind_name)
    return kind.attempts(config['WORKER_MAX_ATTEMPTS']) if kind else config['WORKER_MAX_ATTEMPTS']


def _apply(session, job_id, job):
    """Lock the claimed job `job`, apply its effect, mark it succeeded, within
    its kind's timeout; the caller commits. Returns False when the job was
    finished meanwhile (a duplicate)."""
    kind = _kind(job.kind)
    with time_limit(session, kind.timeout):
        if not ledger.lock_running(session, [job_id]):
            return False
        [payload] = ledger.payloads([job])  # not the batch's: a handler may change it
        ledger.complete(session, [(job_id, kind.handler(payload))])
    return True


def run_job(task, job_ids):
    """Run the job `job_ids` (an id, or a list of ids applied together) once,
    whatever number of times the message is delivered.

    Returns the count of its jobs per outcome ({'succeeded': 3, 'failed': 1});
    raises JobsFailed when all of them failed, celery's Retry to try the
    message again later."""
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
    task's message when it is the message's only job, else by a message of its
    own (to its kind's queue)."""
    def retry(job_id, countdown, error, kind_name):
        if alone:
            raise task.retry(countdown=countdown, exc=error)
        routing = REGISTRY[kind_name].routing if kind_name in REGISTRY else {}
        task.apply_async(args=[job_id], countdown=countdown, **routing)
    return retry


def owner_key():
    """This worker process's owner key (ledger.owners): its advisory lock,
    held for the process's life, tells the sweep the process is alive."""
    owner = current_app.extensions.get('ledger_owner')
    if owner is None:
        owner = current_app.extensions['ledger_owner'] = ledger.Owner(
            current_app.extensions['pg'].pool.connection().engine.url)
    return owner.current()


def _claims_engine():
    """This process's engine for the claims: each claim one statement
    committing itself (three round trips fewer a message than on the
    session: its ping, BEGIN and COMMIT). One connection kept: a pool process
    runs one message at a time (a pool of threads opens more while they
    claim at once)."""
    engine = current_app.extensions.get(CLAIMS_ENGINE)
    if engine is None:
        engine = current_app.extensions[CLAIMS_ENGINE] = current_app.extensions[
            'pg'].statement_engine(1, current_app.config['SQLALCHEMY_MAX_OVERFLOW'])
    return engine


def _claim(job_ids):
    # A connection found dead is replaced and the claim sent again: lost on its
    # way back, the first one may have been made, and the jobs' attempts are
    # then counted twice (as a claim lost in a crash counts none).
    owner = owner_key()
    return on_live_connection(_claims_engine(), lambda conn: ledger.claim(conn, job_ids, owner))


def _run_group(task, job_ids, session, config):
    """Claim the jobs (committed: a dead worker's attempts are counted), then
    apply them all in one transaction; if that fails, each in its own. Jobs
    of a kind with a timeout are applied each in its own, under its limit."""
    claimed = _claim(job_ids)
    limits = {job.kind: _max_attempts(job.kind, config)  # per kind, not per job
              for job in claimed.values()}
    ready = [job_id for job_id, job in sorted(claimed.items())
             if job.attempt <= limits[job.kind]]
    outcomes = [DUPLICATE] * (len(set(job_ids)) - len(claimed))  # finished meanwhile
    reasons = []
    for job_id in sorted(claimed.keys() - set(ready)):  # fails them
        outcomes.append(_attempt(job_id, claimed[job_id], session, config, None, reasons))
    timed = any(getattr(REGISTRY.get(claimed[j].kind), 'timeout', None) for j in ready)
    if ready and not timed:
        try:
            applied = run_batch(session, {job_id: claimed[job_id] for job_id in ready})
            outcomes += [SUCCEEDED] * applied + [DUPLICATE] * (len(ready) - applied)
            ready = []
        except BatchAborted as error:
            request_ids = sorted({claimed[j].request_id for j in ready
                                  if claimed[j].request_id is not None})
            log.info('group of %d jobs aborted (%s): applying them one by one', len(ready),
                     error, extra={'job_ids': ready, 'request_ids': request_ids})
    retry = _retry_later(task, alone=len(ready) == 1 and len(job_ids) == 1)
    for job_id in ready:
        outcomes.append(_attempt(job_id, claimed[job_id], session, config, retry, reasons))
    return _report(outcomes, reasons)


def _attempt(job_id, job, session, config, retry, reasons):
    """Apply the claimed job `job` (a ledger.Claim) in its own transaction and
    record its outcome (a failed job's reason appended to `reasons`); the log
    lines meanwhile carry the job's request id."""
    token = job_request_id.set(job.request_id)
    try:
        outcome = _attempt_alone(job_id, job, session, config, retry)
    finally:
        job_request_id.reset(token)
    if isinstance(outcome, tuple):
        outcome, reason = outcome
        reasons.append((job_id, reason))
    return outcome


def _attempt_alone(job_id, job, session, config, retry):
    attempt, kind_name = job.attempt, job.kind
    max_attempts = _max_attempts(kind_name, config)
    if attempt > max_attempts:
        # Earlier attempts died with their worker (killed, out of memory): stop here.
        reason = f'gave up after {attempt - 1} attempts: worker lost'
        ledger.fail(session, job_id, reason)
        log.warning('job %s failed: %s', job_id, reason, extra={'job_id': job_id})
        return FAILED, reason
    try:
        applied = _apply(session, job_id, job)
        with translate():
            session.commit()
        return SUCCEEDED if applied else DUPLICATE
    except (TransientError, JobTimeout, QueryCanceledError) as error:
        if isinstance(error, TransientError):
            _rollback(session)
            reason = error
        else:
            # Stopped past the kind's timeout, maybe in the middle of a statement:
            # the connection is dropped, which ends the transaction and its locks.
            _discard(session)
            reason = f'timed out after {_kind(kind_name).timeout:g} s'
        if attempt < max_attempts:
            ledger.requeue(session, job_id, reason)
            delay = backoff(attempt, config)
            log.info('job %s: attempt %d %s: retried in %.1f s', job_id, attempt,
                     reason if isinstance(reason, str) else f'met {type(error).__name__}',
                     delay, extra={'job_id': job_id})
            retry(job_id, delay, error, kind_name)
            return QUEUED
        told = reason if isinstance(reason, str) else type(error).__name__
        ledger.fail(session, job_id, f'gave up after {attempt} attempts: {reason}')
        log.warning('job %s failed: gave up after %d attempts: %s', job_id, attempt, told,
                    extra={'job_id': job_id})
        return FAILED, f'gave up after {attempt} attempts: {told}'
    except RetryLater as later:
        _rollback(session)
        if attempt < max_attempts:
            ledger.reschedule(session, job_id, later.seconds, later.reason)
            log.info('job %s: attempt %d: retry later (%s) in %.1f s', job_id, attempt,
                     later.reason, later.seconds, extra={'job_id': job_id})
            return SCHEDULED
        reason = f'gave up after {attempt} attempts: {later.reason}'
        ledger.fail(session, job_id, reason)
        log.warning('job %s failed: %s', job_id, reason, extra={'job_id': job_id})
        return FAILED, reason
    except (JobFailed, PgError) as error:
        # The job's own fault (a business rule, a missing row, a constraint):
        # any other exception is a bug of its handler, below.
        _rollback(session)
        ledger.fail(session, job_id, error)
        log.warning('job %s failed: %s', job_id, _reason(error), extra={'job_id': job_id})
        return FAILED, _reason(error)
    except Exception as error:
        # The runner is the boundary: a bug in a handler fails its job, never the worker.
        _rollback(session)
        log.exception('job %s: handler error', job_id, extra={'job_id': job_id})
        ledger.fail(session, job_id, f'internal error: {type(error).__name__}')
        return FAILED, f'internal error: {type(error).__name__}'


def _reason(error):
    # The reason the ledger keeps, in one line: no SQL or parameters of a driver's error.
    return str(error).splitlines()[0][:300] if str(error) else type(error).__name__


def _rollback(session):
    try:
        with translate():
            session.rollback()
    except PgError:
        pass  # a lost connection has nothing left to roll back


def _discard(session):
    """End the session's transaction by dropping its connection (PostgreSQL
    rolls it back and releases its locks): after an interrupted statement
    the connection's state is not to be trusted. The next use takes a new one."""
    try:
        session.invalidate()
    except Exception:  # noqa: BLE001 - closing what is broken may fail too
        pass
