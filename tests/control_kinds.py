"""Job kinds of the job-control tests, loaded by the processes they start
(WORKER_KIND_MODULES=tests.control_kinds): a policy each."""
import os
import time
from datetime import datetime

from tasks import RetryLater, kind
from tasks.users import User

OBJECT = {'type': 'object', 'additionalProperties': False}


@kind('control.hold', max_attempts=2, timeout=1, schema={
    **OBJECT, 'properties': {'user_id': {'type': 'integer'}, 'seconds': {'type': 'number'}},
    'required': ['user_id', 'seconds']})
def hold(payload):
    """Lock a user's row, then stay in Python past the timeout."""
    User.objects.get_for_update(id=payload['user_id'], nowait=False)
    time.sleep(payload['seconds'])
    return {'held': payload['seconds']}


@kind('control.sql_sleep', max_attempts=1, timeout=1, schema={
    **OBJECT, 'properties': {'user_id': {'type': 'integer'}, 'seconds': {'type': 'number'}},
    'required': ['user_id', 'seconds']})
def sql_sleep(payload):
    """Lock a user's row, then stay in one SQL statement past the timeout."""
    User.objects.get_for_update(id=payload['user_id'], nowait=False)
    User.objects.raw_sql('SELECT pg_sleep(:s)', s=payload['seconds'])
    return {'slept': payload['seconds']}


@kind('control.routed', queue='control-special', priority=0, schema={
    **OBJECT, 'properties': {'n': {'type': 'integer'}}})
def routed(payload):
    """Say which worker process applied it."""
    return {'pid': os.getpid()}


@kind('control.later', max_attempts=5, schema={
    **OBJECT, 'properties': {'until': {'type': 'string'}}, 'required': ['until']})
def later(payload):
    """Not before `until` (ISO time): RetryLater until then."""
    until = datetime.fromisoformat(payload['until'])
    now = User.objects.raw_sql('SELECT clock_timestamp()').scalar()
    if now < until:
        raise RetryLater(0.3, 'not yet')
    return {'ran_at': now.isoformat()}
