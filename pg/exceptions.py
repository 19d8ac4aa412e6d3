"""Errors of the ORM layer.

Driver errors never leave this package as they are: `translate()` maps them
to these classes by SQLSTATE, so callers match on meaning. Each class's
docstring is its default message.
"""
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc


class PgError(Exception):
    """Database layer error."""

    sqlstate = None

    def __init__(self, message=None, *, sqlstate=None):
        super().__init__(message or self.__doc__)
        if sqlstate is not None:
            self.sqlstate = sqlstate


class ConfigError(PgError, ValueError):
    """The database configuration is missing or invalid."""


class InvalidQueryError(PgError, ValueError):
    """The query is invalid: unknown column, empty filter or contradictory options."""


class NotFoundError(PgError, LookupError):
    """No row matches the filters."""


class MultipleFoundError(PgError, LookupError):
    """More than one row matches filters that should select one."""


class IntegrityError(PgError):
    """A constraint refused the change (foreign key, unique, not null, check)."""


class TransientError(PgError):
    """The operation may succeed if the whole transaction is tried again."""


class RowLockedError(TransientError):
    """The row is locked by another transaction."""

    sqlstate = '55P03'


class DeadlockError(TransientError):
    """The transaction was chosen as a deadlock victim."""

    sqlstate = '40P01'


class SerializationError(TransientError):
    """The transaction could not be serialized with concurrent ones."""

    sqlstate = '40001'


class QueryCanceledError(PgError):
    """The statement was cancelled: it ran past statement_timeout, or was asked to stop."""

    sqlstate = '57014'


class ConnectionLostError(TransientError):
    """The database is unreachable or the connection was lost."""


_BY_SQLSTATE = {cls.sqlstate: cls for cls in (RowLockedError, DeadlockError, SerializationError,
                                               QueryCanceledError)}


def _sqlstate(error):
    orig = getattr(error, 'orig', None)
    # psycopg 3 names it sqlstate, psycopg2 pgcode.
    return getattr(orig, 'sqlstate', None) or getattr(orig, 'pgcode', None)


def from_driver(error):
    """Return the layer error that stands for a SQLAlchemy/driver error."""
    state = _sqlstate(error)
    message = str(getattr(error, 'orig', None) or error).strip().splitlines()[0]
    if state in _BY_SQLSTATE:
        return _BY_SQLSTATE[state](message, sqlstate=state)
    if state and state.startswith('23'):
        return IntegrityError(message, sqlstate=state)
    if (isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated) or (
            state is None and isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError))) or (
            state and state.startswith(('08', '57P'))):
        return ConnectionLostError(message, sqlstate=state)
    return PgError(message, sqlstate=state)


@contextmanager
def translate():
    """Re-raise SQLAlchemy and driver errors as errors of this layer."""
    try:
        yield
    except sa_exc.SQLAlchemyError as error:
        if isinstance(error, (sa_exc.DBAPIError, sa_exc.DisconnectionError)):
            raise from_driver(error) from error
        if isinstance(error, sa_exc.TimeoutError):
            raise ConnectionLostError('no database connection free in the pool') from error
        if isinstance(error, sa_exc.PendingRollbackError):
            raise PgError('an earlier statement failed: roll the transaction back first') from error
        if isinstance(error, (sa_exc.InvalidRequestError, sa_exc.ArgumentError)):
            raise InvalidQueryError(str(error).splitlines()[0]) from error
        raise PgError(str(error).splitlines()[0]) from error
