"""The OpenAPI 3.1 document of the service, built at run time from the job
kinds' JSON Schemas (`GET /openapi.json`), and a page that renders it with
Swagger UI (`GET /docs`), whose assets come from a pinned Python package."""
import copy
import json
import os
import re

import flask_swagger_ui
from flask import Blueprint, current_app, send_from_directory, url_for

import ledger
from tasks import load_all
from service.settings import SCOPES
from web.auth import ENDPOINT_SCOPES, OPEN_ENDPOINTS, OPEN_PATHS
from web.body import STORABLE_PATTERN, storable_schema
from web.idempotency import HEADER as IDEMPOTENCY_HEADER
from web.json_pointer import escape

bp = Blueprint('openapi', __name__)

SWAGGER_UI_DIST = os.path.join(os.path.dirname(flask_swagger_ui.__file__), 'dist')
ASSET_MAX_AGE = 3600

API_VERSION = '1.0.0'
MAX_JOB_ID = 2**63 - 1
DESCRIPTION = """\
Accepts JSON jobs, validates each against the JSON Schema of its kind, records
it in a PostgreSQL ledger and applies it once through Celery workers.

When the service is configured with API tokens (`FLASK_API_TOKENS`), every
request carries `Authorization: Bearer <token>`, except `GET /health`,
`GET /metrics`, `GET /kinds`, `GET /openapi.json` and `GET /docs`, which are
always open. Without tokens configured, nothing needs one. A token has
scopes: `enqueue` (queue jobs), `read` (read jobs), `admin` (retry); each
operation names the scope it needs in its security requirement, and a token
without it gets 403. Each token's requests are limited per scope
(`FLASK_RATE_LIMIT_<SCOPE>`): past the limit, 429 with `Retry-After`.

Every answer carries an `X-Request-ID` header: the request's own (1-128
printable ASCII characters) or, without a valid one, a new id. The jobs a
request records keep it (`request_id`), and the logs about them show it.

Every error body is `{"code", "message"}`, plus `"errors": [{"path", "message"}]`
(JSON pointers into the body) for schema violations. The web server itself
(gunicorn) answers in HTML only a request line over 8190 bytes or headers
over twice the limits of 414 and 431; a method a path does not have is 405
with `Allow`.

A job may be scheduled: `run_at` (RFC 3339) or `delay` (seconds) as query
parameters of `POST /jobs/{kind}` and its batch. It waits in the ledger
(`scheduled`) and is queued when due, within about a second. A scheduled
or queued job can be cancelled (`POST /jobs/{job_id}/cancel`): it is never
applied. `POST /jobs/cancel` and `POST /jobs/retry` change every job matching
their filters (query parameters) and answer how many."""


def _ref(name, section='schemas'):
    return {'$ref': f'#/components/{section}/{name}'}


def _json(schema):
    return {'application/json': {'schema': schema}}


# Keywords whose values are data, not subschemas: a "$ref" inside them is not a reference.
DATA_KEYWORDS = {'const', 'enum', 'default', 'examples', 'example'}


def _rebase_refs(schema, base):
    """The schema with its local references ("#/$defs/x") made relative to
    `base`, the pointer where it now sits inside the document. A schema with
    its own $id keeps its references: they resolve against that id."""
    if not isinstance(schema, dict) or '$id' in schema:
        return schema

    def walk(node):
        if isinstance(node, dict):
            return {key: (value if key in DATA_KEYWORDS
                          else base + value[1:] if key == '$ref' and isinstance(value, str)
                          and value.startswith('#')
                          else walk(value))
                    for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node
    return walk(copy.deepcopy(schema))


ERROR_RESPONSES = {
    '400': ('BadRequest', 'The body is not valid JSON, or violates the schema (the errors '
                          'name the fields), or holds a string with an unpaired surrogate '
                          '(`\\ud800`: not Unicode text, which PostgreSQL cannot store), or a '
                          'parameter or header is malformed.'),
    '401': ('Unauthorized', 'API tokens are configured and none, or a wrong one, was given.'),
    '403': ('Forbidden', 'The token lacks the scope this operation needs.'),
    '404': ('NotFound', 'Unknown job kind or job.'),
    '409': ('Conflict', 'The job is not in a status that allows this (a running or '
                          'finished job is not cancelled; only a failed or cancelled one is '
                          'retried).'),
    '413': ('PayloadTooLarge', 'The body is larger than FLASK_MAX_CONTENT_LENGTH.'),
    '414': ('UriTooLong', 'The request line is longer than 4094 bytes.'),
    '415': ('UnsupportedMediaType', 'The body is not sent as application/json.'),
    '422': ('Unprocessable', 'The Idempotency-Key was used with another body, or a '
                             'retried job\'s payload no longer fits its schema.'),
    '429': ('TooManyRequests', "The token's rate limit for this operation's scope is spent: "
                               'try again after Retry-After.'),
    '431': ('HeaderFieldsTooLarge', 'More than 100 header fields, or one longer than 8190 '
                                    'bytes.'),
    '503': ('Unavailable', 'PostgreSQL or Redis is unreachable: try again after Retry-After.'),
}
# What any request may be answered (web/request_limits.py).
SIZE_ERRORS = ('414', '431')
# What every operation that needs a token may answer besides its own errors.
TOKEN_ERRORS = ('401', '403', '429')


def _errors(*codes):
    return {code: _ref(ERROR_RESPONSES[code][0], 'responses') for code in codes}


def _components(kinds):
    job_id = {'type': 'integer', 'minimum': 1, 'maximum': MAX_JOB_ID}
    schemas = {
        'Error': {
            'type': 'object',
            'description': 'The error envelope of every failed request.',
            'properties': {
                'code': {'type': 'integer', 'description': 'The HTTP status.'},
                'message': {'type': 'string'},
                'errors': {
                    'type': 'array',
                    'items': {
                        'type': 'object',
                        'properties': {
                            'path': {'type': 'string',
                                     'description': 'JSON pointer into the request body.'},
                            'message': {'type': 'string'},
                        },
                        'required': ['path', 'message'],
                    },
                },
            },
            'required': ['code', 'message'],
        },
        'JobStatus': {'type': 'string', 'enum': [status.value for status in ledger.Status]},
        'Accepted': {
            'type': 'object',
            'description': 'A job accepted (committed to the ledger) and queued; a request '
                           'replayed with its Idempotency-Key gets the original job.',
            'properties': {
                'id': job_id,
                'kind': {'type': 'string'},
                'status': _ref('JobStatus'),
                'status_url': {'type': 'string', 'description': 'GET it to follow the job.'},
                'run_at': {'type': 'string', 'format': 'date-time',
                           'description': 'When a scheduled job is due.'},
            },
            'required': ['id', 'kind', 'status', 'status_url'],
        },
        'BatchAccepted': {
            'type': 'object',
            'properties': {'ids': {'type': 'array', 'items': job_id,
                                   'description': 'The jobs, in the order of the items.'},
                           'run_at': {'type': 'string', 'format': 'date-time',
                                      'description': 'When the scheduled jobs are due.'}},
            'required': ['ids'],
        },
        'Changed': {
            'type': 'object',
            'description': 'What a bulk change did.',
            'properties': {
                'count': {'type': 'integer', 'minimum': 0, 'description': 'Jobs changed.'},
                'refused': {'type': 'integer', 'minimum': 0,
                            'description': '(retry) Jobs left as they were: their payload no '
                                           'longer fits their kind\'s schema.'},
            },
            'required': ['count'],
        },
        'Job': {
            'type': 'object',
            'properties': {
                'id': job_id,
                'kind': {'type': 'string'},
                'status': _ref('JobStatus'),
                'attempts': {'type': 'integer', 'minimum': 0},
                'result': {'description': 'The JSON result of a succeeded job.'},
                'error': {'type': ['string', 'null'], 'description': 'Why a job failed.'},
                'created_at': {'type': ['string', 'null'], 'format': 'date-time'},
                'updated_at': {'type': ['string', 'null'], 'format': 'date-time'},
                'request_id': {'type': ['string', 'null'],
                               'description': 'X-Request-ID of the request that recorded it.'},
                'run_at': {'type': ['string', 'null'], 'format': 'date-time',
                           'description': 'When it was scheduled to run (null: at once).'},
            },
            'required': ['id', 'kind', 'status', 'attempts', 'result', 'error',
                         'created_at', 'updated_at'],
        },
        'JobList': {
            'type': 'object',
            'properties': {'jobs': {'type': 'array', 'items': _ref('Job')}},
            'required': ['jobs'],
        },
        'Kind': {
            'type': 'object',
            'properties': {
                'name': {'type': 'string'},
                'description': {'type': 'string'},
                'schema': {'type': 'object', 'description': 'The JSON Schema of its payload.'},
            },
            'required': ['name', 'description', 'schema'],
        },
        'KindList': {
            'type': 'object',
            'properties': {'kinds': {'type': 'array', 'items': _ref('Kind')}},
            'required': ['kinds'],
        },
        'Health': {
            'type': 'object',
            'properties': {
                'status': {'const': 'ok'},
                'checks': {'type': 'object',
                           'additionalProperties': {'enum': ['ok', 'down']}},
            },
            'required': ['status', 'checks'],
        },
    }
    for kind in kinds:
        schemas[kind.name] = _rebase_refs(storable_schema(kind.schema),
                                          f'#/components/schemas/{escape(kind.name)}')
    responses = {
        name: {'description': description, 'content': _json(_ref('Error'))}
        for name, description in ERROR_RESPONSES.values()
    }
    retry_after = {'Retry-After': {'description': 'Seconds to wait before trying again.',
                                   'schema': {'type': 'integer', 'minimum': 1}}}
    responses['Unavailable']['headers'] = retry_after
    responses['TooManyRequests']['headers'] = retry_after
    # /health answers 503 with the checks beside the envelope.
    responses['HealthUnavailable'] = {
        'description': 'PostgreSQL or Redis is down; `checks` says which.',
        'headers': responses['Unavailable']['headers'],
        'content': _json({'allOf': [_ref('Error'), {
            'type': 'object',
            'properties': {'checks': {'type': 'object',
                                      'additionalProperties': {'enum': ['ok', 'down']}}},
        }]}),
    }
    parameters = {
        'IdempotencyKey': {
            'name': IDEMPOTENCY_HEADER, 'in': 'header', 'required': False,
            'description': 'Makes the request safe to send again: the same key (per API '
                           'token) and body return the original job(s); another body is 422.',
            'schema': {'type': 'string', 'minLength': 1, 'maxLength': 255,
                       'pattern': '^[\\x20-\\x7e]+$'},
        },
        'JobId': {'name': 'job_id', 'in': 'path', 'required': True, 'schema': job_id},
        'RunAt': {
            'name': 'run_at', 'in': 'query', 'required': False,
            'description': 'Schedule the job(s): when to run them (RFC 3339; a time past '
                           'runs at once). With delay too: the later of the two.',
            'schema': {'type': 'string', 'format': 'date-time'},
        },
        'Delay': {
            'name': 'delay', 'in': 'query', 'required': False,
            'description': 'Schedule the job(s): seconds from now. '
                           'With run_at too: the later of the two.',
            'schema': {'type': 'number', 'minimum': 0, 'maximum': 316224000},
        },
        'FilterKind': {'name': 'kind', 'in': 'query', 'required': False,
                       'description': 'Only jobs of this kind.',
                       'schema': {'type': 'string', 'pattern': STORABLE_PATTERN}},
        'FilterCreatedBefore': {
            'name': 'created_before', 'in': 'query', 'required': False,
            'description': 'Only jobs recorded before this time (RFC 3339).',
            'schema': {'type': 'string', 'format': 'date-time'},
        },
    }
    security = {'bearerAuth': {
        'type': 'http', 'scheme': 'bearer',
        'description': 'One of FLASK_API_TOKENS, when the service has any. Its scopes (the '
                       'roles of an operation\'s security requirement): '
                       + ', '.join(f'`{scope}`' for scope in SCOPES)
                       + '; a token listed without scopes has them all.',
    }}
    return {'schemas': schemas, 'responses': responses, 'parameters': parameters,
            'securitySchemes': security}


def _accepted_response(description):
    return {'description': description, 'content': _json(_ref('Accepted')),
            'headers': {'Location': {'description': 'The URL of the job.',
                                     'schema': {'type': 'string'}}}}


def _kind_paths(kind, config_limit):
    payload = _ref(kind.name)
    summary = kind.description or kind.name
    limit = kind.batch_cap(config_limit)
    return {
        f'/jobs/{kind.name}': {'post': {
            'tags': ['jobs'],
            'operationId': operation_id(f'create_{kind.name}'),
            'summary': f'Queue one {kind.name} job: {summary}',
            'parameters': [_ref('IdempotencyKey', 'parameters'), _ref('RunAt', 'parameters'),
                           _ref('Delay', 'parameters')],
            'requestBody': {'required': True, 'content': _json(payload)},
            'responses': {'202': _accepted_response('The job, recorded and queued (or '
                                                    'scheduled).'),
                          **_errors('400', '413', '415', '422', '503')},
        }},
        f'/jobs/{kind.name}/batch': {'post': {
            'tags': ['jobs'],
            'operationId': operation_id(f'create_{kind.name}_batch'),
            'summary': f'Queue up to {limit} {kind.name} jobs at once',
            'description': 'All or nothing: an invalid item is a 400 naming its index, and '
                           'no job is recorded.',
            'parameters': [_ref('IdempotencyKey', 'parameters'), _ref('RunAt', 'parameters'),
                           _ref('Delay', 'parameters')],
            'requestBody': {'required': True, 'content': _json({
                'type': 'array', 'minItems': 1, 'maxItems': limit, 'items': payload})},
            'responses': {'202': {'description': 'The jobs, recorded and queued.',
                                  'content': _json(_ref('BatchAccepted'))},
                          **_errors('400', '413', '415', '422', '503')},
        }},
    }


def operation_id(name):
    """An operation id that is an identifier in any language: generators make
    function names of them (`create_genre.create` is none)."""
    return re.sub(r'\W', '_', name)


# The documented operations of the token-needing endpoints (web/auth.py's names).
ENDPOINTS = {('/jobs', 'get'): 'jobs.list_jobs', ('/jobs/{job_id}', 'get'): 'jobs.get_job',
             ('/jobs/{job_id}/retry', 'post'): 'jobs.retry_job'}
KIND_ENDPOINTS = {False: 'jobs.create_job', True: 'jobs.create_batch'}
OPEN_DOCUMENTED = {path: endpoint for endpoint, path in OPEN_ENDPOINTS.items() if path}


def _endpoint(path, method):
    if path in OPEN_DOCUMENTED:
        return OPEN_DOCUMENTED[path]
    if (path, method) in ENDPOINTS:
        return ENDPOINTS[path, method]
    return KIND_ENDPOINTS[path.endswith('/batch')]


def _secure(path, method, operation):
    """The operation's security requirement, from what web/auth.py enforces:
    none for the open endpoints; else the bearer token with the scope its
    endpoint needs, and the 401, 403 and 429 it may then answer. Any
    operation may answer 414 and 431 (web/request_limits.py)."""
    endpoint = _endpoint(path, method)
    operation['responses'].update(_errors(*SIZE_ERRORS))
    if path in OPEN_PATHS:
        operation['security'] = []
    else:
        operation['security'] = [{'bearerAuth': [ENDPOINT_SCOPES[endpoint]]}]
        operation['responses'].update(_errors(*TOKEN_ERRORS))
    operation['responses'] = dict(sorted(operation['responses'].items()))


def build_document(kinds, batch_limit):
    """The OpenAPI 3.1 document of the service for these kinds, batches capped
    at `batch_limit` (FLASK_BATCH_LIMIT) or a kind's own smaller limit."""
    kinds = sorted(kinds, key=lambda k: k.name)
    paths = {}
    for kind in kinds:
        paths.update(_kind_paths(kind, batch_limit))
    paths.update({
        '/jobs': {'get': {
            'tags': ['jobs'], 'operationId': 'list_jobs',
            'summary': 'The matching jobs, newest first',
            'description': 'Another query parameter than these is a 400.',
            'parameters': [
                {'name': 'status', 'in': 'query', 'schema': _ref('JobStatus')},
                {'name': 'kind', 'in': 'query',
                 'schema': {'type': 'string', 'pattern': STORABLE_PATTERN}},
                {'name': 'limit', 'in': 'query',
                 'schema': {'type': 'integer', 'minimum': 1, 'maximum': 1000, 'default': 50}},
            ],
            'responses': {'200': {'description': 'The jobs.', 'content': _json(_ref('JobList'))},
                          **_errors('400', '503')},
        }},
        '/jobs/{job_id}': {'get': {
            'tags': ['jobs'], 'operationId': 'get_job', 'summary': 'A job and its outcome',
            'parameters': [_ref('JobId', 'parameters')],
            'responses': {'200': {'description': 'The job.', 'content': _json(_ref('Job'))},
                          **_errors('404', '503')},
        }},
        '/jobs/{job_id}/retry': {'post': {
            'tags': ['jobs'], 'operationId': 'retry_job',
            'summary': 'Queue a failed or cancelled job again (its payload checked again)',
            'parameters': [_ref('JobId', 'parameters')],
            'responses': {'202': _accepted_response('The job, queued again.'),
                          **_errors('404', '409', '422', '503')},
        }},
        '/jobs/{job_id}/cancel': {'post': {
            'tags': ['jobs'], 'operationId': 'cancel_job',
            'summary': 'Cancel a scheduled or queued job: it is never applied',
            'description': 'Even when its message is delivered later, the worker does not '
                           'apply it. A running or finished job: 409.',
            'parameters': [_ref('JobId', 'parameters')],
            'responses': {'200': {'description': 'The job, cancelled.',
                                  'content': _json(_ref('Job'))},
                          **_errors('404', '409', '503')},
        }},
        '/jobs/cancel': {'post': {
            'tags': ['jobs'], 'operationId': 'cancel_jobs',
            'summary': 'Cancel every scheduled and/or queued job matching the filters',
            'description': 'Without filters: every scheduled and queued job. Answers how many '
                           'were cancelled.',
            'parameters': [
                {'name': 'status', 'in': 'query', 'required': False,
                 'description': 'scheduled, queued, or both comma-separated (the default).',
                 'schema': {'type': 'string', 'pattern': '^(scheduled|queued)(,(scheduled|queued))?$'}},
                _ref('FilterKind', 'parameters'), _ref('FilterCreatedBefore', 'parameters'),
            ],
            'responses': {'200': {'description': 'How many were cancelled.',
                                  'content': _json(_ref('Changed'))},
                          **_errors('400', '503')},
        }},
        '/jobs/retry': {'post': {
            'tags': ['jobs'], 'operationId': 'retry_jobs',
            'summary': 'Queue again the failed and/or cancelled jobs matching the filters',
            'description': 'Without filters: the failed jobs; up to `limit` jobs, oldest first, each with '
                           'its attempts counted afresh and its payload checked again. Send '
                           'it again while `count` is above 0.',
            'parameters': [
                {'name': 'status', 'in': 'query', 'required': False,
                 'description': 'failed (the default), cancelled, or both comma-separated.',
                 'schema': {'type': 'string', 'pattern': '^(failed|cancelled)(,(failed|cancelled))?$'}},
                _ref('FilterKind', 'parameters'), _ref('FilterCreatedBefore', 'parameters'),
                {'name': 'limit', 'in': 'query', 'required': False,
                 'schema': {'type': 'integer', 'minimum': 1, 'maximum': 10000, 'default': 10000}},
            ],
            'responses': {'200': {'description': 'How many were queued again.',
                                  'content': _json(_ref('Changed'))},
                          **_errors('400', '503')},
        }},
        '/kinds': {'get': {
            'tags': ['jobs'], 'operationId': 'list_kinds',
            'summary': 'Every job kind with the JSON Schema of its payload (open without a '
                       'token)',
            'responses': {'200': {'description': 'The kinds.', 'content': _json(_ref('KindList'))}},
        }},
        '/health': {'get': {
            'tags': ['system'], 'operationId': 'health',
            'summary': 'Whether PostgreSQL and Redis answer (open without a token)',
            'responses': {'200': {'description': 'Both answer.', 'content': _json(_ref('Health'))},
                          '503': _ref('HealthUnavailable', 'responses')},
        }},
        '/metrics': {'get': {
            'tags': ['system'], 'operationId': 'metrics',
            'summary': 'Prometheus metrics from the ledger and the broker (open without a token)',
            'responses': {'200': {'description': 'Prometheus text format 0.0.4.',
                                  'content': {'text/plain': {'schema': {'type': 'string'}}}}},
        }},
        '/openapi.json': {'get': {
            'tags': ['system'], 'operationId': 'openapi',
            'summary': 'This document (open without a token)',
            'responses': {'200': {'description': 'The OpenAPI 3.1 document.',
                                  'content': _json({'type': 'object'})}},
        }},
        '/docs': {'get': {
            'tags': ['system'], 'operationId': 'docs',
            'summary': 'This document rendered by Swagger UI (open without a token)',
            'responses': {'200': {'description': 'An HTML page.',
                                  'content': {'text/html': {'schema': {'type': 'string'}}}}},
        }},
    })
    for path, item in paths.items():
        for method, operation in item.items():
            _secure(path, method, operation)
    return {
        'openapi': '3.1.0',
        'info': {'title': 'Message-queue worker service', 'version': API_VERSION,
                 'description': DESCRIPTION},
        'tags': [{'name': 'jobs', 'description': 'Queue jobs and follow them.'},
                 {'name': 'system', 'description': 'Health, metrics and documentation.'}],
        'security': [{'bearerAuth': []}],
        'paths': paths,
        'components': _components(kinds),
    }


@bp.get('/openapi.json')
def document():
    return build_document(load_all().values(), current_app.config['FLASK_BATCH_LIMIT'])


DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Message-queue worker service: API</title>
  <link rel="stylesheet" href="{css}">
  <link rel="icon" type="image/png" href="{icon}">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{bundle}"></script>
  <script src="{initializer}"></script>
</body>
</html>
"""

# A file rather than an inline script, so a strict Content-Security-Policy can be added later.
INITIALIZER = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: %s,
    dom_id: '#swagger-ui',
    deepLinking: true,
    validatorUrl: null,  // no call to the public validator: nothing leaves the service
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout'
  });
};
"""


@bp.get('/docs')
def docs():
    asset = lambda name: url_for('openapi.docs_asset', filename=name)  # noqa: E731
    return DOCS_PAGE.format(css=asset('swagger-ui.css'), icon=asset('favicon-32x32.png'),
                            bundle=asset('swagger-ui-bundle.js'),
                            initializer=url_for('openapi.docs_initializer'))


@bp.get('/docs/initializer.js')
def docs_initializer():
    body = INITIALIZER % json.dumps(url_for('openapi.document'))
    return body, 200, {'Content-Type': 'text/javascript; charset=utf-8'}


@bp.get('/docs/assets/<path:filename>')
def docs_asset(filename):
    # send_from_directory refuses paths that leave the directory.
    return send_from_directory(SWAGGER_UI_DIST, filename, max_age=ASSET_MAX_AGE)
