"""Random test data of the seed API."""
import random
import string
import uuid
from decimal import Decimal


class BaseTestFactory:
    @classmethod
    def create_random_uuid(cls):
        return uuid.uuid4()

    @classmethod
    def create_random_string(cls, prefix=None, n_range=20):
        text = ''.join(random.choices(string.ascii_lowercase + string.digits, k=n_range))
        return f'{prefix or ""}{text}'

    @classmethod
    def create_random_email(cls, prefix=None):
        return f'{cls.create_random_string(prefix)}@{cls.create_random_string()}.com'

    @classmethod
    def create_random_decimal(cls, n=10000):
        return Decimal(random.randrange(n)) / 100
