"""User accounts and their credit."""
from sqlalchemy import Boolean, Column, Numeric, String

from pg.orm import BaseModel
from pg.types import Password


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


class AuthenticationError(Exception):
    """The password does not match."""

    def __init__(self, message=None):
        super().__init__(message or self.__doc__)
