"""User accounts and their credit."""
from decimal import Decimal

from sqlalchemy import Boolean, Column, Numeric, String, bindparam, func, update

from pg.exceptions import NotFoundError
from pg.orm import BaseModel
from pg.types import Password, PasswordHash, PasswordTooLongError
from tasks.kinds import InvalidPayload, JobFailed, kind


class User(BaseModel):
    __tablename__ = 'users'
    username = Column(String(64))
    password = Column(Password)
    email = Column(String(64))
    is_active = Column(Boolean(), nullable=False, default=False)
    credit_score = Column(Numeric(), nullable=True)

    def get_id(self):
        return self.id

    @classmethod
    def authenticate(cls, username=None, email=None, password=None):
        """Return the user with this username and email if the password matches.

        Raises pg.exceptions.NotFoundError for an unknown user, AuthenticationError
        for a wrong password."""
        user = cls.objects.get(username=username, email=email)
        if not user.password == password:
            raise AuthenticationError()
        return user


# A hot user's row is locked from its first statement to the group's commit,
# and every other group crediting it waits that long: one round trip (the
# lock and the update together, no ORM object to load and flush) where
# get_for_update and update took two and the ORM's work between them.
_users = User.__table__
_ADD_CREDIT = (update(_users).where(_users.c.id == bindparam('user_id'))
               .values(credit_score=func.coalesce(_users.c.credit_score, 0)
                       + bindparam('total', type_=Numeric()))
               .returning(_users.c.credit_score))


class AuthenticationError(Exception):
    """The password does not match."""

    def __init__(self, message=None):
        super().__init__(message or self.__doc__)


class InsufficientCredit(JobFailed):
    """The credit would go below zero."""


def hash_password(payload):
    """Keep only the password's hash in the job ledger, never the clear text.

    Raises InvalidPayload past 72 bytes (bcrypt would ignore the rest)."""
    try:
        return {**payload, 'password': PasswordHash.from_clear(payload['password']).hash}
    except PasswordTooLongError as error:
        raise InvalidPayload('password', str(error)) from None


# Each password is hashed (about 0.3 s) before the answer: a few per batch at most.
@kind('user.create', prepare=hash_password, batch_limit=3, schema={
    'type': 'object',
    'properties': {
        'username': {'type': 'string', 'minLength': 1, 'maxLength': 64},
        'email': {'type': 'string', 'format': 'email', 'maxLength': 64},
        # bcrypt reads 72 bytes: JSON Schema counts characters, not bytes, so the
        # limit is told here (maxLength 72 holds for ASCII) and prepare enforces it.
        'password': {'type': 'string', 'minLength': 8, 'maxLength': 72,
                     'description': 'At most 72 bytes in UTF-8 (what bcrypt reads): a '
                                    'longer one is refused with 400.'},
    },
    'required': ['username', 'email', 'password'],
    'additionalProperties': False,
})
def create_user(payload):
    """Insert a user (the ledger holds the password already hashed)."""
    user = User(username=payload['username'], email=payload['email'],
                password=PasswordHash(payload['password']), credit_score=0)
    return {'id': user.add().id}


def _credit_many(payloads):
    """The credits in order, in one go: each user's row credited with the
    group's sum by one statement (locked in id order, so two groups cannot
    deadlock), each job's result the running credit from the one before.
    Raises as the handler does if any of them fails; the worker then applies
    them one by one."""
    totals = {}
    for payload in payloads:
        user_id = payload['user_id']
        totals[user_id] = totals.get(user_id, Decimal(0)) + Decimal(str(payload['amount']))
    session = User.objects.session()
    credits = {}  # user id -> its credit before the group
    for user_id in sorted(totals):
        total = totals[user_id]
        after = session.execute(_ADD_CREDIT, {'user_id': user_id, 'total': total}).scalar()
        if after is None:
            raise JobFailed(f'user {user_id} does not exist')
        credits[user_id] = after - total
    results = []
    for payload in payloads:
        user_id = payload['user_id']
        credits[user_id] = _credited(user_id, credits[user_id], payload['amount'])
        results.append(_credit_result(user_id, credits[user_id]))
    return results


@kind('user.credit', handle_many=_credit_many, schema={
    'type': 'object',
    'properties': {
        'user_id': {'type': 'integer', 'minimum': 1, 'maximum': 2**31 - 1},
        'amount': {'type': 'number', 'minimum': -1e15, 'maximum': 1e15},
    },
    'required': ['user_id', 'amount'],
    'additionalProperties': False,
})
def credit_user(payload):
    """Add `amount` (negative: a debit) to a user's credit, row-locked; never below 0."""
    user = _locked_user(payload['user_id'])
    user.credit_score = _credited(user.id, user.credit_score, payload['amount'])
    user.update()
    return _credit_result(user.id, user.credit_score)


def _locked_user(user_id):
    try:
        return User.objects.get_for_update(id=user_id, nowait=False)
    except NotFoundError:
        raise JobFailed(f'user {user_id} does not exist') from None


def _credited(user_id, credit, amount):
    """`credit` (None: 0) plus `amount`; refused below 0."""
    credit = (credit or Decimal(0)) + Decimal(str(amount))
    if credit < 0:
        raise InsufficientCredit(f'credit of user {user_id} would go below 0')
    return credit


def _credit_result(user_id, credit):
    return {'id': user_id,
            'credit_score': int(credit) if credit == credit.to_integral() else float(credit)}
