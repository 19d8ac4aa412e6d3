"""JSON Schema serializers of the seed API.

A subclass names its schema in `_schema`; constructing it validates the data
(format checking on: date, date-time, uuid ...). `data` is what was given,
unchanged; `payload` is its JSON text. Both are read-only.
"""
import json
import uuid
from datetime import date, datetime, time, timezone
from decimal import Decimal

from jsonschema import ValidationError, validators
from jsonschema.exceptions import best_match


class SerializerError(Exception):
    """The data cannot be serialized."""

    def __init__(self, message=None):
        super().__init__(message or self.__doc__)


class InvalidDataError(SerializerError, ValidationError):
    """The data does not match the schema (also a jsonschema ValidationError)."""

    def __init__(self, *args, **kwargs):
        ValidationError.__init__(self, *args, **kwargs)


def to_json_value(value):
    """The JSON form of a value that json cannot write itself: ISO 8601 dates
    and times (a naive datetime is taken as UTC), UUIDs and Decimals as text."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    raise TypeError(f'{type(value).__name__} is not JSON serializable')


def to_json_form(data):
    """`data` as plain JSON types, through `to_json_value`."""
    return json.loads(json.dumps(data, default=to_json_value))


class JsonSerializer:
    """Validated data and its JSON text; subclasses set `_schema`."""

    _schema = {}
    _validator = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        validator_class = validators.validator_for(cls._schema)
        validator_class.check_schema(cls._schema)
        cls._validator = validator_class(cls._schema,
                                         format_checker=validator_class.FORMAT_CHECKER)

    def __init__(self, data=None):
        if not data:
            raise SerializerError(f'{type(self).__name__} needs data to serialize')
        try:
            json_form = to_json_form(data)
        except (TypeError, ValueError) as error:
            raise SerializerError(str(error)) from None
        error = best_match(self._validator.iter_errors(json_form))
        if error is not None:
            raise InvalidDataError.create_from(error)
        self._data = data
        self._payload = json.dumps(json_form, indent=4)

    @property
    def data(self):
        return self._data

    @property
    def payload(self):
        return self._payload


__all__ = ['InvalidDataError', 'JsonSerializer', 'SerializerError', 'to_json_form',
           'to_json_value']
