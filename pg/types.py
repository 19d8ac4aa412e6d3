"""Column types of the seed API: Password (a salted hash) and GUID."""
import hmac
import uuid

import bcrypt
from sqlalchemy import String, Uuid
from sqlalchemy.types import TypeDecorator

from pg.exceptions import PgError

BCRYPT_ROUNDS = 12
BCRYPT_MAX_BYTES = 72


class PasswordTooLongError(PgError, ValueError):
    """The password is longer than 72 bytes, the most bcrypt reads."""


class PasswordHash:
    """A stored bcrypt hash; `== 'clear text'` checks a password against it."""

    __slots__ = ('hash',)

    def __init__(self, hash_):
        self.hash = hash_

    @classmethod
    def from_clear(cls, clear):
        """Hash a clear-text password with a new salt.

        Raises PasswordTooLongError rather than let bcrypt ignore the rest."""
        raw = clear.encode('utf-8')
        if len(raw) > BCRYPT_MAX_BYTES:
            raise PasswordTooLongError()
        return cls(bcrypt.hashpw(raw, bcrypt.gensalt(BCRYPT_ROUNDS)).decode('ascii'))

    def __eq__(self, other):
        if isinstance(other, PasswordHash):
            return hmac.compare_digest(self.hash, other.hash)
        if isinstance(other, str):
            raw = other.encode('utf-8')
            # checkpw compares in constant time; an over-long password never matches.
            return len(raw) <= BCRYPT_MAX_BYTES and bcrypt.checkpw(raw, self.hash.encode('ascii'))
        return NotImplemented

    def __hash__(self):
        return hash(self.hash)

    def __repr__(self):
        return '<PasswordHash>'


class Password(TypeDecorator):
    """A password column: stores a salted bcrypt hash, never the clear text.

    Assigning a str hashes it at once (see pg.orm); reading gives a
    PasswordHash that compares equal to the right clear text.
    """

    impl = String(128)
    cache_ok = True
    private = True  # left out of BaseModel.dict

    def coerce_assigned(self, value):
        return PasswordHash.from_clear(value) if isinstance(value, str) else value

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = PasswordHash.from_clear(value)
        return value.hash

    def process_result_value(self, value, dialect):
        return None if value is None else PasswordHash(value)


class GUID(TypeDecorator):
    """A UUID column (PostgreSQL uuid); accepts uuid.UUID or its string form."""

    impl = Uuid(as_uuid=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None or isinstance(value, uuid.UUID):
            return value
        return uuid.UUID(str(value))
