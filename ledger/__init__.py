"""The job ledger: the only code that reads or writes the `jobs` table.

A job is recorded queued (record), claimed running by a worker (claim),
completed with its effect's result in the effect's own transaction
(complete), failed with a reason (fail), queued again for its next attempt
after a transient error (requeue) or by an operator (requeue_failed,
retry_matching), taken back when its message could not be sent (withdraw,
restore_failed), found again by the recovery sweep (take_stale: a dead
owner, ledger.owners), and deleted once old (prune). A job recorded with a
run_at waits scheduled until beat's due pass queues it (take_due); a handler
may put its job back to wait (reschedule). A scheduled or queued job may be
cancelled (cancel, cancel_matching). Events are tallied as they happen
(ledger.counts: the metrics' counters). Errors: LedgerError.
"""
from ledger.control import (Retried, cancel, cancel_matching, requeue_failed, restore_failed,
                            retry_matching)
from ledger.errors import IdempotencyConflict, JobNotFound, LedgerError, WrongStatus
from ledger.counts import fold as fold_counts
from ledger.model import MAX_JOB_ID, Job, JobCount, Status
from ledger.owners import Owner
from ledger.reads import (get, listing, public_job, scheduled_lateness, succeeded_durations,
                          total_count, unfinished_count)
from ledger.record import insert_jobs, record, withdraw
from ledger.retention import prune
from ledger.run import Claim, claim, complete, fail, lock_running, payloads, requeue
from ledger.schedule import reschedule, return_due, take_due
from ledger.sweep import take_stale

__all__ = [
    'Job', 'JobCount', 'Status', 'MAX_JOB_ID', 'Owner',
    'LedgerError', 'IdempotencyConflict', 'JobNotFound', 'WrongStatus',
    'record', 'insert_jobs', 'withdraw',
    'Claim', 'claim', 'payloads', 'lock_running', 'complete', 'fail', 'requeue',
    'Retried', 'requeue_failed', 'restore_failed', 'retry_matching',
    'cancel', 'cancel_matching', 'take_due', 'return_due', 'reschedule',
    'get', 'public_job', 'listing', 'unfinished_count', 'total_count', 'succeeded_durations',
    'scheduled_lateness',
    'take_stale', 'prune', 'fold_counts',
]
