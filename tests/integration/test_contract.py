"""A contract tester (schemathesis) generates requests from GET /openapi.json,
valid and invalid ones, and checks that the service answers only what the
document says: documented statuses, bodies of the documented schemas, no
5xx. In-process (the app's WSGI), with tokens of every scope, on the test
database and a Redis database of the tests' own."""
import os
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.integration.service import service_fixtures

BROKER_URL = os.environ.get('TEST_CONTRACT_BROKER_URL', 'redis://127.0.0.1:6379/4')
TOKEN = 'contract-token-0123456789'
EXAMPLES = 6

broker, make_app, clean, app, client = service_fixtures(BROKER_URL)


@pytest.fixture
def api(make_app, clean):
    # Limits high enough not to be met: 429 is checked in test_openapi.py.
    served = make_app(FLASK_API_TOKENS=TOKEN, FLASK_RATE_LIMIT_READ='',
                      FLASK_RATE_LIMIT_ENQUEUE='', FLASK_RATE_LIMIT_ADMIN='')
    return schemathesis.openapi.from_wsgi('/openapi.json', served)


# Driven by hand: schemathesis's pytest plugin does not run under this pytest.
@pytest.mark.parametrize('mode', [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_service_answers_what_the_document_says(api, mode):
    failures = []
    for found in api.get_all_operations():
        operation = found.ok()
        if mode == GenerationMode.NEGATIVE and operation.path.startswith('/jobs/user.create'):
            # Its `format: email` is, as JSON Schema 2020-12 has it, an annotation the
            # service checks loosely (an @); the negative mode takes it as an assertion.
            continue

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            if mode == GenerationMode.POSITIVE and operation.path.startswith('/jobs/user.create'):
                # bcrypt's 72 bytes: JSON Schema's maxLength counts characters, so the
                # document states the byte limit in words (and a 400), not as a keyword.
                items = case.body if isinstance(case.body, list) else [case.body]
                assume(all(len(str(item.get('password', '')).encode('utf-8', 'surrogatepass'))
                           <= 72 for item in items if isinstance(item, dict)))
            if mode == GenerationMode.NEGATIVE:
                # A query parameter whose value is a list of none or one is sent
                # as no parameter or as one value: what arrives may be valid.
                assume(not any(isinstance(value, list) and len(value) < 2
                               for value in (case.query or {}).values()))
            if mode == GenerationMode.POSITIVE and (case.headers or {}).get('Idempotency-Key'):
                # A key generated twice with two bodies is a 422, as documented, which the
                # check of valid data would take for a refusal: a fresh key per request.
                case.headers['Idempotency-Key'] = uuid.uuid4().hex
            case.call_and_validate(headers={'Authorization': f'Bearer {TOKEN}'})
        try:
            check()
        except Unsatisfiable:
            pass  # no parameter or body to break: nothing negative to send
        except Exception as error:  # every operation is tried; all failures are shown
            failures.append(f'{operation.label}: {error}')
    assert not failures, '\n\n'.join(failures)
