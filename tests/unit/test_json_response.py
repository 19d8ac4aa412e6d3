"""The answers orjson writes are the documents Flask's own provider writes:
keys sorted, the same values, and Flask's rules wherever orjson's differ."""
import datetime
import decimal
import json
import uuid
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.json.provider import DefaultJSONProvider

from ledger import Status
from web.json_response import OrjsonProvider


@dataclass
class Point:
    x: int


DOCUMENTS = [
    {'id': 7, 'kind': 'genre.create', 'status': Status.QUEUED, 'status_url': '/jobs/7'},
    {'b': 1, 'a': {'z': [1, 2.5, None, True], 'y': 'é \u2028 "q"'}},
    {'at': datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)},
    {'big': 2**70, 'small': -2**64},
    {'amount': decimal.Decimal('1.50'), 'id': uuid.UUID(int=1), 'point': Point(3)},
    {1: 'an int key'},
    [],
    'text',
]


def body(provider_class, document):
    app = Flask(__name__)
    app.json = provider_class(app)
    with app.app_context():
        response = app.json.response(document)
        return response.mimetype, response.get_data(as_text=True)


@pytest.mark.parametrize('document', DOCUMENTS, ids=range(len(DOCUMENTS)))
def test_same_document_as_flask(document):
    flask_type, flask_body = body(DefaultJSONProvider, document)
    orjson_type, orjson_body = body(OrjsonProvider, document)
    assert orjson_type == flask_type == 'application/json'
    assert json.loads(orjson_body) == json.loads(flask_body)
    assert orjson_body.endswith('\n')
    if isinstance(document, dict) and all(isinstance(k, str) for k in document):
        assert list(json.loads(orjson_body)) == sorted(document)


def test_dumps_with_options_is_flasks():
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    assert app.json.dumps({'b': 1, 'a': 2}, indent=2) == json.dumps({'a': 2, 'b': 1}, indent=2)
    assert app.json.dumps({'b': 1, 'a': 2}) == '{"a":2,"b":1}'
