import uuid
from datetime import date, datetime, timezone

import pytest
from jsonschema import ValidationError

from serializers import InvalidDataError, JsonSerializer, SerializerError


class Event(JsonSerializer):
    _schema = {
        'type': 'object',
        'properties': {
            'day': {'type': 'string', 'format': 'date'},
            'at': {'type': 'string', 'format': 'date-time'},
            'key': {'type': 'string', 'format': 'uuid'},
        },
        'additionalProperties': False,
    }


def test_formats_are_checked():
    for bad in ({'day': '2026-13-45'}, {'at': 'yesterday'}, {'key': 'not-a-uuid'}):
        with pytest.raises(ValidationError):
            Event(data=bad)


def test_invalid_data_is_both_a_serializer_and_a_jsonschema_error():
    with pytest.raises(InvalidDataError) as info:
        Event(data={'extra': 1})
    assert isinstance(info.value, SerializerError)
    assert isinstance(info.value, ValidationError)
    assert 'extra' in info.value.message


def test_python_values_are_validated_through_their_json_form_and_kept():
    key = uuid.uuid4()
    at = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    data = {'day': date(2026, 11, 26), 'at': at, 'key': key}
    serializer = Event(data=data)
    assert serializer.data['key'] is key
    assert '"2026-11-26T12:00:00+00:00"' in serializer.payload
    assert str(key) in serializer.payload


def test_values_json_cannot_write_are_a_serializer_error():
    with pytest.raises(SerializerError):
        Event(data={'day': object()})


def test_an_invalid_schema_fails_when_the_class_is_made():
    with pytest.raises(Exception):
        class Broken(JsonSerializer):
            _schema = {'type': 'no-such-type'}
