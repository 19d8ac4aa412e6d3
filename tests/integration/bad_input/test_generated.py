"""Bad requests generated with hypothesis (tests/integration/bad_input/
strategies.py), against the service app in-process: no 5xx, every error in
the envelope, each answered within a second. No backend is made
unreachable here, so no answer may be a 503 either. The module's last test
adds up how many requests were generated."""
import json
import re
from urllib.parse import quote

import pytest
from hypothesis import given, strategies as st

from tests.integration.bad_input.checks import (GENERATED, JSON, SMALL_LIMIT, post, post_streamed,
                                                send)
from tests.integration.bad_input.json_text import KINDS, STRING_FIELDS, VALID, dumps
from tests.integration.bad_input.strategies import (authorizations, batches, bodies, content_types,
                                                    encodings, fuzz, idempotency_keys, job_ids,
                                                    kind_names, queries, tricky_texts)

GENERATED_TESTS = {'test_generated_jobs', 'test_generated_strings', 'test_generated_batches',
                   'test_generated_raw_bodies', 'test_generated_kind_names', 'test_generated_reads',
                   'test_generated_auth_and_idempotency_headers'}


@fuzz(200)
@given(data=st.data())
def test_generated_jobs(client, data):
    name = data.draw(st.sampled_from(KINDS), label='kind')
    body = data.draw(bodies(name), label='body')
    key = data.draw(st.none() | idempotency_keys, label='Idempotency-Key')
    headers = {} if key is None else {'Idempotency-Key': key}
    post(client, f'/jobs/{name}', body, headers=headers, counter='test_generated_jobs')


@fuzz(80)
@given(name_field=st.sampled_from(STRING_FIELDS), text=tricky_texts, how=encodings,
       batch=st.booleans())
def test_generated_strings(client, name_field, text, how, batch):
    """A payload valid but for what one of its strings holds, in any encoding:
    never a 5xx, and a 400 when PostgreSQL could not store the string."""
    name, field = name_field
    payload = {**VALID[name], field: text.ljust(8, '.') if field == 'password' else text}
    url = f'/jobs/{name}/batch' if batch else f'/jobs/{name}'
    response = post(client, url, dumps([payload] if batch else payload, how),
                    counter='test_generated_strings')
    if re.search('[\x00\ud800-\udfff]', text):
        assert response.status_code == 400


@fuzz(120)
@given(data=st.data())
def test_generated_batches(client, data):
    name = data.draw(st.sampled_from(KINDS), label='kind')
    body = data.draw(batches(name), label='body')
    key = data.draw(st.none() | idempotency_keys, label='Idempotency-Key')
    headers = {} if key is None else {'Idempotency-Key': key}
    post(client, f'/jobs/{name}/batch', body, headers=headers, counter='test_generated_batches')


@fuzz(80)
@given(name=st.sampled_from(KINDS), batch=st.booleans(),
       content_type=st.one_of(st.just(JSON), st.none(), content_types),
       body=st.one_of(st.binary(max_size=500),
                      st.sampled_from(KINDS).flatmap(bodies),
                      st.builds(lambda n: b'x' * n, st.integers(0, 3 * SMALL_LIMIT)),
                      st.builds(lambda n: b'{' + b' ' * n + b'}',
                                st.integers(SMALL_LIMIT - 10, SMALL_LIMIT + 10))),
       streamed=st.booleans())
def test_generated_raw_bodies(small_client, name, batch, content_type, body, streamed):
    """Any bytes as any content type, on an app whose limit is SMALL_LIMIT,
    with a Content-Length or streamed (chunked)."""
    url = f'/jobs/{name}/batch' if batch else f'/jobs/{name}'
    send_ = post_streamed if streamed else post
    response = send_(small_client, url, body, content_type=content_type,
                     counter='test_generated_raw_bodies')
    if len(body) > SMALL_LIMIT and response.status_code != 415:
        assert response.status_code == 413


@fuzz(60)
@given(name=kind_names, quoted=st.booleans(), batch=st.booleans(), method=st.sampled_from(
    ['POST', 'POST', 'GET', 'PUT', 'DELETE', 'PATCH']), body=st.sampled_from(KINDS).flatmap(bodies))
def test_generated_kind_names(client, name, quoted, batch, method, body):
    """Any kind name, in any method: an unknown kind is a 404 (a method not served a 405)."""
    path = quote(name, safe='') if quoted else quote(name, safe='/%')
    url = f'/jobs/{path}/batch' if batch else f'/jobs/{path}'
    post_kwargs = {'data': body, 'content_type': JSON} if method != 'GET' else {}
    send(client, method, url, counter='test_generated_kind_names', **post_kwargs)


@fuzz(80)
@given(data=st.data())
def test_generated_reads(client, data):
    """GET /jobs with any query, GET /jobs/<id> and POST /jobs/<id>/retry with any id."""
    what = data.draw(st.sampled_from(['list', 'list', 'job', 'retry']), label='what')
    if what == 'list':
        send(client, 'GET', '/jobs?' + data.draw(queries, label='query'),
             counter='test_generated_reads')
    elif what == 'job':
        send(client, 'GET', '/jobs/' + data.draw(job_ids, label='id'),
             counter='test_generated_reads')
    else:
        send(client, 'POST', f'/jobs/{data.draw(job_ids, label="id")}/retry',
             counter='test_generated_reads')


@fuzz(60)
@given(authorization=authorizations, key=idempotency_keys,
       name=st.sampled_from(KINDS), batch=st.booleans(), valid=st.booleans())
def test_generated_auth_and_idempotency_headers(token_client, authorization, key, name, batch,
                                                valid):
    """An app with tokens: any Authorization header, any Idempotency-Key."""
    payload = VALID[name] if valid else {**VALID[name], 'x': 1}
    headers = {k: v for k, v in [('Authorization', authorization), ('Idempotency-Key', key)]
               if v is not None}
    url = f'/jobs/{name}/batch' if batch else f'/jobs/{name}'
    body = json.dumps([payload] if batch else payload)
    response = post(token_client, url, body, headers=headers,
                    counter='test_generated_auth_and_idempotency_headers')
    if response.status_code != 401:
        scheme, _, token = (authorization or '').partition(' ')
        assert scheme.lower() == 'bearer' and token.strip() in ('t1', 's3cret-token')


# --- the count -------------------------------------------------------------------------------

def test_at_least_500_requests_were_generated():
    if set(GENERATED) != GENERATED_TESTS:
        pytest.skip('counted only when every generated test of the module runs')
    assert sum(GENERATED.values()) >= 500, GENERATED
    print(f'\n{sum(GENERATED.values())} generated requests: {dict(GENERATED)}')
