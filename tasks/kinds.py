"""The registry of job kinds: a name, the JSON Schema of its payload, and the
handler that applies it. A domain module declares its kinds with `@kind`."""
from dataclasses import dataclass, field
from typing import Callable

import jsonschema_rs
from jsonschema import Draft202012Validator


class KindError(Exception):
    """The root of the job kinds' errors."""

    def __init__(self, message=None):
        super().__init__(message or self.__doc__)


class JobFailed(KindError):
    """The job cannot succeed: it fails at once, without retries."""


class InvalidPayload(KindError):
    """A field of the payload is refused by the kind's `prepare`."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field


class KindDefinitionError(KindError):
    """A kind is declared wrongly (a programming error, met at import)."""


@dataclass(frozen=True)
class Kind:
    name: str
    schema: dict
    handler: Callable
    prepare: Callable = None
    description: str = ''
    validator: Draft202012Validator = field(repr=False, default=None)
    batch_limit: int = None
    handle_many: Callable = None
    compiled: object = field(repr=False, default=None)

    def surely_valid(self, payload):
        """True when the compiled validator (jsonschema-rs, some 50 times faster)
        accepts the payload. False means: ask `validator`, the reference, which
        also words the errors; the compiled one may be stricter (emails) or
        unable to read a value."""
        try:
            return self.compiled.is_valid(payload)
        except Exception:
            return False

    def apply_many(self, payloads):
        """The results of applying the payloads in order, in the caller's transaction."""
        if self.handle_many:
            return self.handle_many(payloads)
        return [self.handler(p) for p in payloads]

    def batch_cap(self, config_limit):
        """The most jobs of this kind one batch may carry, under `config_limit`
        (FLASK_BATCH_LIMIT)."""
        return min(config_limit, self.batch_limit) if self.batch_limit else config_limit

    def stored_payload(self, payload):
        """The payload as the ledger keeps it (`prepare` may hash secrets)."""
        return self.prepare(payload) if self.prepare else payload


REGISTRY = {}


def kind(name, schema, prepare=None, batch_limit=None, handle_many=None):
    """Register the decorated function as the handler of job kind `name`.

    `prepare`, if given, turns a valid payload into the form the ledger keeps
    (run by the web front before recording; an InvalidPayload from it is a 400).
    `handle_many`, if given, applies a list of payloads at once (a multi-row
    INSERT) when the worker runs a batch; it must do what the handler does.
    `batch_limit` caps a batch of this kind below FLASK_BATCH_LIMIT (for a
    costly `prepare`).

    The handler takes the validated payload (a dict), runs inside the job's
    transaction, and returns the job's JSON result; it raises JobFailed (or
    a permanent pg error) to fail the job.
    """
    Draft202012Validator.check_schema(schema)
    if schema.get('additionalProperties') is not False:
        raise KindDefinitionError(f'kind {name}: the schema must refuse unknown fields')

    def register(handler):
        if name in REGISTRY and REGISTRY[name].handler is not handler:
            raise KindDefinitionError(f'kind {name} is registered twice')
        REGISTRY[name] = Kind(
            name=name, schema=schema, handler=handler, prepare=prepare, batch_limit=batch_limit,
            handle_many=handle_many,
            description=(handler.__doc__ or '').strip().split('\n')[0],
            validator=Draft202012Validator(schema,
                                           format_checker=Draft202012Validator.FORMAT_CHECKER),
            compiled=jsonschema_rs.Draft202012Validator(schema, validate_formats=True))
        return handler
    return register
