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


class RetryLater(KindError):
    """Raised by a handler: not now. Its transaction is rolled back and the
    job waits `seconds` (scheduled, in the ledger), then runs again; the
    attempt counts toward the kind's max_attempts, and `reason` is its note."""

    def __init__(self, seconds, reason='retry later'):
        super().__init__(reason)
        self.seconds = max(0.0, float(seconds))
        self.reason = reason


class JobTimeout(KindError):
    """The handler ran past its kind's timeout and was stopped."""


# Names a kind cannot take: the jobs API's own paths (POST /jobs/cancel, /jobs/retry).
RESERVED_NAMES = ('cancel', 'retry')
# Priorities as the Redis transport honours them: 0 (first) to 9.
PRIORITIES = range(10)


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
    max_attempts: int = None
    timeout: float = None
    queue: str = None
    priority: int = None

    def attempts(self, default):
        """Tries of a job of this kind: its own max_attempts, else `default`
        (WORKER_MAX_ATTEMPTS)."""
        return self.max_attempts or default

    @property
    def routing(self):
        """Celery's publishing options of this kind: its queue and priority, if any."""
        options = {}
        if self.queue:
            options['queue'] = self.queue
        if self.priority is not None:
            options['priority'] = self.priority
        return options

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


def kind(name, schema, prepare=None, batch_limit=None, handle_many=None, *, max_attempts=None,
         timeout=None, queue=None, priority=None):
    """Register the decorated function as the handler of job kind `name`.

    `prepare`, if given, turns a valid payload into the form the ledger keeps
    (run by the web front before recording; an InvalidPayload from it is a 400).
    `handle_many`, if given, applies a list of payloads at once (a multi-row
    INSERT) when the worker runs a batch; it must do what the handler does.
    `batch_limit` caps a batch of this kind below FLASK_BATCH_LIMIT (for a
    costly `prepare`).

    The handler takes the validated payload (a dict), runs inside the job's
    transaction, and returns the job's JSON result; it raises JobFailed (or
    a permanent pg error) to fail the job, RetryLater(seconds, reason) to
    run it again later.

    Policy: `max_attempts` (tries before a job meeting transient errors,
    timeouts or RetryLater is failed; default WORKER_MAX_ATTEMPTS);
    `timeout` (seconds: a handler past it is stopped, its SQL statement
    cancelled by PostgreSQL, its transaction rolled back, and the job
    retried or failed; such jobs are applied one by one); `queue` (the
    Celery queue its messages go to: a worker serves it when started with
    -Q naming it, WORKER_QUEUES in the Procfile); `priority` (0 first to 9,
    among the messages of its queue still in Redis).
    """
    Draft202012Validator.check_schema(schema)
    if schema.get('additionalProperties') is not False:
        raise KindDefinitionError(f'kind {name}: the schema must refuse unknown fields')
    if name in RESERVED_NAMES:
        raise KindDefinitionError(f'kind {name}: the name is a path of the jobs API')
    if max_attempts is not None and not (isinstance(max_attempts, int) and max_attempts >= 1):
        raise KindDefinitionError(f'kind {name}: max_attempts is a whole number from 1')
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise KindDefinitionError(f'kind {name}: timeout is a number of seconds above 0')
    if queue is not None and not (isinstance(queue, str) and queue.strip() == queue and queue):
        raise KindDefinitionError(f'kind {name}: queue is the name of a Celery queue')
    if priority is not None and priority not in PRIORITIES:
        raise KindDefinitionError(f'kind {name}: priority is a whole number from 0 to 9')

    def register(handler):
        if name in REGISTRY and REGISTRY[name].handler is not handler:
            raise KindDefinitionError(f'kind {name} is registered twice')
        REGISTRY[name] = Kind(
            name=name, schema=schema, handler=handler, prepare=prepare, batch_limit=batch_limit,
            handle_many=handle_many, max_attempts=max_attempts,
            timeout=float(timeout) if timeout is not None else None, queue=queue,
            priority=priority,
            description=(handler.__doc__ or '').strip().split('\n')[0],
            validator=Draft202012Validator(schema,
                                           format_checker=Draft202012Validator.FORMAT_CHECKER),
            compiled=jsonschema_rs.Draft202012Validator(schema, validate_formats=True))
        return handler
    return register
