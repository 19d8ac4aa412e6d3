"""The ledger's errors: one root, LedgerError. Database errors stay pg's own
(pg.exceptions), translated by SQLSTATE."""


class LedgerError(Exception):
    """A job's state cannot change as asked."""

    def __init__(self, message=None):
        super().__init__(message or self.__doc__)


class IdempotencyConflict(LedgerError):
    """The Idempotency-Key was already used with another request."""


class JobNotFound(LedgerError):
    """No such job."""


class WrongStatus(LedgerError):
    """The job is not in a status that allows the change."""

    def __init__(self, job_id, status, message):
        super().__init__(message)
        self.job_id = job_id
        self.status = status
