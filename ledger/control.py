"""What an operator does to a job: queue a failed one again (retry), and take
that back when its message cannot be sent."""
from sqlalchemy import text

from ledger.errors import JobNotFound, WrongStatus
from ledger.model import MAX_JOB_ID, Status
from pg.exceptions import translate

# A retry is a fresh start: its attempts count from 0 again (else a job that
# failed after its last attempt would be given up at once), with no result or
# error. The failed row's values are returned, to be put back if need be.
REQUEUE_FAILED = text('''
UPDATE jobs SET status = :queued, attempts = 0, result = NULL, error = NULL,
                finished_at = NULL, updated_at = now()
FROM (SELECT id, attempts, error, finished_at FROM jobs
      WHERE id = :id AND status = :failed FOR UPDATE) AS was
WHERE jobs.id = was.id
RETURNING jobs.kind, jobs.payload, was.attempts, was.error, was.finished_at
''')

STATUS = text('SELECT status FROM jobs WHERE id = :id')

# Only while nothing has taken the job since: still queued, no attempt made.
RESTORE_FAILED = text('''
UPDATE jobs SET status = :failed, attempts = :attempts, error = :error,
                finished_at = :finished_at, updated_at = now()
WHERE id = :id AND status = :queued AND attempts = 0
''')


class Retried:
    """A failed job queued again: its kind and payload, and what it was."""
    __slots__ = ('job_id', 'kind', 'payload', 'was')

    def __init__(self, job_id, kind, payload, was):
        self.job_id, self.kind, self.payload, self.was = job_id, kind, payload, was


def requeue_failed(session, job_id, check=None):
    """Queue the failed job `job_id` again, attempts reset, result and error
    cleared; committed. `check(kind, payload)` runs before the commit and may
    raise to leave the job failed. Returns a Retried. Raises JobNotFound, or
    WrongStatus when the job is not failed."""
    with translate():
        row = session.execute(REQUEUE_FAILED, {
            'id': job_id, 'queued': Status.QUEUED, 'failed': Status.FAILED,
        }).one_or_none() if job_id <= MAX_JOB_ID else None
        if row is None:
            status = session.execute(STATUS, {'id': job_id}).scalar() if job_id <= MAX_JOB_ID else None
            session.rollback()
            if status is None:
                raise JobNotFound(f'no job {job_id}')
            raise WrongStatus(job_id, status, f'job {job_id} is {status}: only failed jobs are retried')
    kind, payload, attempts, error, finished_at = row
    try:
        if check is not None:
            check(kind, payload)
    except BaseException:
        with translate():
            session.rollback()
        raise
    with translate():
        session.commit()
    return Retried(job_id, kind, payload,
                   {'attempts': attempts, 'error': error, 'finished_at': finished_at})


def restore_failed(session, retried):
    """Put a retried job back as it was, failed, when its message could not
    be sent; committed. False if something took it meanwhile."""
    with translate():
        session.rollback()
        done = session.execute(RESTORE_FAILED, {
            'id': retried.job_id, 'failed': Status.FAILED, 'queued': Status.QUEUED,
            **retried.was}).rowcount
        session.commit()
    return bool(done)
