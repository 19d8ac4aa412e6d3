"""The job ledger: the only code that reads or writes the `jobs` table.

A job is recorded queued (record), claimed running by a worker (claim),
completed with its effect's result in the effect's own transaction
(complete), failed with a reason (fail), queued again for its next attempt
after a transient error (requeue) or by an operator (requeue_failed),
taken back when its message could not be sent (withdraw, restore_failed),
and found again by the recovery sweep (take_stale). Errors: LedgerError.
"""
from ledger.control import Retried, requeue_failed, restore_failed
from ledger.errors import IdempotencyConflict, JobNotFound, LedgerError, WrongStatus
from ledger.model import MAX_JOB_ID, Job, Status
from ledger.reads import get, listing, succeeded_durations, total_count, unfinished_count
from ledger.record import insert_jobs, record, withdraw
from ledger.run import claim, complete, fail, lock_running, requeue
from ledger.sweep import take_stale

__all__ = [
    'Job', 'Status', 'MAX_JOB_ID',
    'LedgerError', 'IdempotencyConflict', 'JobNotFound', 'WrongStatus',
    'record', 'insert_jobs', 'withdraw',
    'claim', 'lock_running', 'complete', 'fail', 'requeue',
    'Retried', 'requeue_failed', 'restore_failed',
    'get', 'listing', 'unfinished_count', 'total_count', 'succeeded_durations',
    'take_stale',
]
