"""A payload against its kind: the schema's violations worded for the
client, and the form the ledger keeps (the kind's `prepare`)."""
import json
import re
import sys

from tasks import InvalidPayload
from web.body import MAX_MESSAGE
from web.errors import ApiError
from web.json_pointer import pointer

MAX_REPORTED_ERRORS = 20
SECRET_FIELD = re.compile('password|secret|token', re.IGNORECASE)


def _entries(error, prefix):
    """Report/pointer pairs for one violation; a missing or unknown field is
    pointed at by name rather than at the object that holds it. Lazy: an
    object may hold 100,000 unknown fields, and only the first few are reported."""
    path = [*prefix, *error.absolute_path]
    instance = error.instance if isinstance(error.instance, dict) else None
    if instance is not None and error.validator == 'required':
        return ((pointer(*path, name), 'is required')
                for name in error.validator_value if name not in instance)
    if instance is not None and error.validator == 'additionalProperties':
        known = set(error.schema.get('properties', {}))
        return ((pointer(*path, name), 'is not an allowed field')
                for name in instance if name not in known)
    if any(SECRET_FIELD.search(str(part)) for part in path):
        # jsonschema's message quotes the value: not for a password.
        return [(pointer(*path), f'does not satisfy {error.validator} '
                                 f'{json.dumps(error.validator_value)[:100]}')]
    return [(pointer(*path), error.message[:MAX_MESSAGE])]


def validation_errors(kind, payload, prefix=()):
    """The schema violations of a payload (at most 20), each with its JSON pointer."""
    if kind.surely_valid(payload):
        return []
    errors = {}
    for error in kind.validator.iter_errors(payload):
        # One violation may name many fields (additionalProperties: one per unknown key).
        for path, message in _entries(error, prefix):
            errors.setdefault(path, message)
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
    return [{'path': path, 'message': message} for path, message in sorted(errors.items())]


def summary(errors):
    return f'{errors[0]["path"]} {errors[0]["message"]}'


def _off_the_loop(function, *args):
    """Call `function` on a real thread when gevent serves this process: a
    `prepare` such as bcrypt (about 0.3 s, without the GIL) would otherwise
    stall every other request of the process meanwhile."""
    monkey = sys.modules.get('gevent.monkey')
    if monkey is not None and monkey.is_module_patched('threading'):
        import gevent
        return gevent.get_hub().threadpool.apply(function, args)
    return function(*args)


def stored(kind, payload, prefix=()):
    """The payload as the ledger keeps it; an InvalidPayload of `prepare` is a 400."""
    if not kind.prepare:
        return payload
    try:
        return _off_the_loop(kind.stored_payload, payload)
    except InvalidPayload as error:
        path = pointer(*prefix, error.field)
        message = str(error)[:MAX_MESSAGE]
        raise ApiError(400, f'{path} {message}', errors=[{'path': path, 'message': message}])
