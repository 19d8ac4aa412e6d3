"""What an operator does to jobs: queue a failed or cancelled one again
(retry), and take that back when its message cannot be sent; cancel a
scheduled or queued one; and both for every job matching a filter."""
from sqlalchemy import func, select, text, update

from ledger import counts
from ledger.errors import JobNotFound, LedgerError, WrongStatus
from ledger.model import IN_IDS, MAX_JOB_ID, Job, Status, in_ids
from pg.exceptions import translate

# A retry is a fresh start: its attempts count from 0 again (else a job that
# failed after its last attempt would be given up at once), with no result or
# error. The row's former values are returned, to be put back if need be.
REQUEUE_FAILED = text('''
UPDATE jobs SET status = :queued, attempts = 0, result = NULL, error = NULL,
                finished_at = NULL, run_at = NULL, updated_at = now()
FROM (SELECT id, status, attempts, error, finished_at FROM jobs
      WHERE id = :id AND status IN (:failed, :cancelled) FOR UPDATE) AS was
WHERE jobs.id = was.id
RETURNING jobs.kind, jobs.payload, was.status, was.attempts, was.error, was.finished_at
''')

STATUS = text('SELECT status FROM jobs WHERE id = :id')

# Only while nothing has taken the job since: still queued, no attempt made.
RESTORE_FAILED = text('''
UPDATE jobs SET status = :status, attempts = :attempts, error = :error,
                finished_at = :finished_at, updated_at = now()
WHERE id = :id AND status = :queued AND attempts = 0
''')

# A claim holds the row's lock until it commits: a cancel waits for it, then
# finds the job running and changes nothing (the worker came first).
CANCEL = text('''
UPDATE jobs SET status = :cancelled, finished_at = clock_timestamp(), updated_at = now()
WHERE id = :id AND status IN (:scheduled, :queued)
RETURNING kind
''')

RETRY_ALL = text(f'''
UPDATE jobs SET status = :queued, attempts = 0, result = NULL, error = NULL,
                finished_at = NULL, run_at = NULL, updated_at = now()
WHERE {IN_IDS}
''')


class Retried:
    """A job queued again: its kind and payload, and what it was."""
    __slots__ = ('job_id', 'kind', 'payload', 'was')

    def __init__(self, job_id, kind, payload, was):
        self.job_id, self.kind, self.payload, self.was = job_id, kind, payload, was


def requeue_failed(session, job_id, check=None):
    """Queue the failed or cancelled job `job_id` again, attempts reset,
    result and error cleared; committed. `check(kind, payload)` runs before
    the commit and may raise to leave the job as it was. Returns a Retried.
    Raises JobNotFound, or WrongStatus when the job is neither."""
    with translate():
        row = session.execute(REQUEUE_FAILED, {
            'id': job_id, 'queued': Status.QUEUED, 'failed': Status.FAILED,
            'cancelled': Status.CANCELLED,
        }).one_or_none() if job_id <= MAX_JOB_ID else None
        if row is None:
            _refuse(session, job_id, 'only failed or cancelled jobs are retried')
    kind, payload, status, attempts, error, finished_at = row
    try:
        if check is not None:
            check(kind, payload)
    except BaseException:
        with translate():
            session.rollback()
        raise
    with translate():
        session.commit()
    return Retried(job_id, kind, payload, {'status': status, 'attempts': attempts,
                                           'error': error, 'finished_at': finished_at})


def restore_failed(session, retried):
    """Put a retried job back as it was (failed or cancelled) when its message
    could not be sent; committed. False if something took it meanwhile."""
    with translate():
        session.rollback()
        done = session.execute(RESTORE_FAILED, {
            'id': retried.job_id, 'queued': Status.QUEUED, **retried.was}).rowcount
        session.commit()
    return bool(done)


def _refuse(session, job_id, why):
    """Raise JobNotFound, or WrongStatus saying `why`, for a job left alone."""
    status = session.execute(STATUS, {'id': job_id}).scalar() if job_id <= MAX_JOB_ID else None
    session.rollback()
    if status is None:
        raise JobNotFound(f'no job {job_id}')
    raise WrongStatus(job_id, status, f'job {job_id} is {status}: {why}')


def cancel(session, job_id):
    """Cancel the scheduled or queued job `job_id`; committed. It is finished
    unapplied: a worker that gets its message later does not claim it.
    Raises JobNotFound, or WrongStatus when it is running or finished."""
    with translate():
        done = session.execute(CANCEL, {
            'id': job_id, 'cancelled': Status.CANCELLED, 'scheduled': Status.SCHEDULED,
            'queued': Status.QUEUED}).one_or_none() if job_id <= MAX_JOB_ID else None
        if done is None:
            _refuse(session, job_id, 'only scheduled or queued jobs are cancelled')
        counts.add(session, done[0], 'cancelled', 1)
        session.commit()


def _matching(statuses, kind=None, created_before=None):
    """The WHERE clause of a bulk change: one of `statuses`, of `kind`,
    recorded before `created_before` (each filter only when given)."""
    where = [Job.status.in_([Status(s).value for s in statuses])]
    if kind is not None:
        where.append(Job.kind == kind)
    if created_before is not None:
        where.append(Job.created_at < created_before)
    return where


def cancel_matching(session, statuses=Status.cancellable(), kind=None, created_before=None):
    """Cancel every job of `statuses` (scheduled, queued or both) matching
    the filters; committed. Returns how many were cancelled."""
    if not statuses or not set(statuses) <= set(Status.cancellable()):
        raise LedgerError('only scheduled or queued jobs are cancelled')
    with translate():
        kinds = session.scalars(
            update(Job).where(*_matching(statuses, kind, created_before))
            .values(status=Status.CANCELLED.value, finished_at=func.clock_timestamp(),
                    updated_at=func.now())
            .returning(Job.kind)
            .execution_options(synchronize_session=False)).all()
        for name in set(kinds):
            counts.add(session, name, 'cancelled', kinds.count(name))
        session.commit()
    return len(kinds)


def retry_matching(session, publish, statuses=(Status.FAILED,), kind=None, created_before=None,
                   check=None, limit=10000):
    """Queue again (attempts afresh) up to `limit` jobs of `statuses` (failed,
    cancelled) matching the filters, oldest first, leaving alone those whose
    payload `check(kind, payload)` refuses (returns False); committed, then
    `publish({kind: ids})` sends their messages. If it raises, the jobs are
    put back as they were (those nothing took meanwhile) and its error
    raised. Returns (how many were queued, how many were refused)."""
    if not statuses or not set(statuses) <= set(Status.retriable()):
        raise LedgerError('only failed or cancelled jobs are retried')
    with translate():
        rows = session.execute(
            select(Job.id, Job.kind, Job.payload, Job.status, Job.attempts, Job.error,
                   Job.finished_at)
            .where(*_matching(statuses, kind, created_before))
            .order_by(Job.id).limit(limit).with_for_update(skip_locked=True)).all()
        by_kind, was, refused = {}, [], 0
        for job_id, job_kind, payload, status, attempts, error, finished_at in rows:
            if check is None or check(job_kind, payload):
                by_kind.setdefault(job_kind, []).append(job_id)
                was.append({'id': job_id, 'status': status, 'attempts': attempts,
                            'error': error, 'finished_at': finished_at,
                            'queued': Status.QUEUED})
            else:
                refused += 1
        if was:
            session.execute(RETRY_ALL, {**in_ids([w['id'] for w in was]),
                                        'queued': Status.QUEUED})
        session.commit()
    if not was:
        return 0, refused
    try:
        publish(by_kind)
    except BaseException:
        with translate():
            session.rollback()
            session.execute(RESTORE_FAILED, was)
            session.commit()
        raise
    return len(was), refused
