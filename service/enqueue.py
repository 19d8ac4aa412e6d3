"""Enqueue a job from Python, inside the caller's own transaction:

    from service.enqueue import enqueue
    job_id = enqueue('genre.create', {'name': 'Rock', 'description': 'loud'}, session=session)

The job row is inserted in `session`'s transaction (the app's default
session when none is given) and its message published once that
transaction commits (SQLAlchemy's after_commit); nothing is published if it
rolls back. A crash between the commit and the publish leaves the job
queued without a message: beat's recovery sweep publishes it. The payload
is checked as the HTTP API checks it (its kind's schema and `prepare`)
before anything is written.

Needs the app context of an app built by `service.create_app` (or
`web.create_app`): its database, its Celery app and its kinds.
"""
import hashlib
import hmac
import json
import logging
from datetime import datetime, timedelta, timezone

from flask import current_app
from sqlalchemy import event

import ledger
from service.queue import publish
from tasks import REGISTRY, KindError

log = logging.getLogger(__name__)

SCOPE = 'enqueue'  # the idempotency scope of the keys given here
PENDING = 'service.enqueue.pending'  # session.info: {celery: {kind: [ids]}} to publish


class EnqueueError(KindError):
    """The job cannot be enqueued: unknown kind, bad payload, run_at or key."""

    def __init__(self, message, errors=()):
        super().__init__(message)
        self.errors = list(errors)  # [{'path', 'message'}] of a payload's schema violations


def enqueue(kind, payload, *, session=None, run_at=None, key=None):
    """Record a job of `kind` in `session`'s transaction (not committed) and
    publish it after that transaction commits; return its id.

    `run_at`: an aware datetime: the job waits scheduled until then (beat
    publishes it). `key`: an idempotency key (scope 'enqueue'): enqueued
    again with the same kind and payload, the first job's id is returned and
    nothing new recorded. Raises EnqueueError (a tasks.KindError) before
    anything is written: unknown kind, payload refused by its schema or the
    kind's prepare, naive run_at, bad key; ledger.IdempotencyConflict for a
    key used with another payload."""
    found = REGISTRY.get(kind)
    if found is None:
        raise EnqueueError(f'unknown job kind {kind!r}')
    _check(found, payload)
    if run_at is not None and (not isinstance(run_at, datetime) or run_at.utcoffset() is None):
        raise EnqueueError('run_at is a datetime with a time zone (datetime.now(timezone.utc))')
    if key is not None and not (isinstance(key, str) and 0 < len(key) <= 255):
        raise EnqueueError('key is a string of 1 to 255 characters')
    try:
        stored = found.stored_payload(payload)
    except KindError as error:
        raise EnqueueError(f'invalid {kind} payload: {error}') from None
    app = current_app._get_current_object()
    session = session if session is not None else app.extensions['pg'].pool.connection().session
    keys = digests = None
    if key is not None:
        keys, digests = [key], [_digest(app, kind, payload, run_at)]
    [job_id], created = ledger.record(session, kind, [stored], scope=SCOPE, keys=keys,
                                      digests=digests, run_at=run_at)
    if created and run_at is None:
        _publish_after_commit(session, app, kind, job_id)
    return job_id


def in_seconds(seconds):
    """An aware datetime `seconds` from now: enqueue(..., run_at=in_seconds(60))."""
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def _check(kind, payload):
    if kind.surely_valid(payload):
        return
    # JSON pointers, as the API's; the rule broken, not the message (it may quote a password).
    errors = [{'path': ''.join('/' + str(part).replace('~', '~0').replace('/', '~1')
                               for part in error.absolute_path),
               'message': f'does not satisfy {error.validator}'}
              for error in kind.validator.iter_errors(payload)]
    if errors:
        first = errors[0]
        raise EnqueueError(f'invalid {kind.name} payload: {first["path"]} {first["message"]}',
                           errors)


def _digest(app, kind, payload, run_at):
    # Keyed as the API's: the payload may hold a clear password.
    canonical = json.dumps([kind, payload, run_at.isoformat() if run_at else None],
                           sort_keys=True, separators=(',', ':'))
    secret = (app.config.get('FLASK_SECRET_KEY') or 'development').encode()
    return hmac.new(secret, canonical.encode(), hashlib.sha256).hexdigest()


def _publish_after_commit(session, app, kind, job_id):
    pending = session.info.get(PENDING)
    if pending is None:
        pending = session.info[PENDING] = {}
        event.listen(session, 'after_commit', _published)
        event.listen(session, 'after_rollback', _forgotten)
    celery = app.extensions['celery']
    batch = app.config['WORKER_BATCH_SIZE']
    pending.setdefault((celery, batch), {}).setdefault(kind, []).append(job_id)


def _published(session):
    """after_commit: send the messages of the jobs the transaction recorded.
    A broker that refuses now cannot undo the commit: the sweep sends them."""
    pending = session.info.get(PENDING) or {}
    jobs = list(pending.items())
    pending.clear()
    for (celery, batch), by_kind in jobs:
        for kind, ids in by_kind.items():
            try:
                publish(celery, ids, kind, per_message=batch)
            except Exception as error:  # noqa: BLE001 - committed: the sweep recovers them
                log.warning('enqueue: %d %s jobs committed but not published (%s): the '
                            'recovery sweep publishes them', len(ids), kind,
                            type(error).__name__, extra={'job_ids': ids})


def _forgotten(session):
    """after_rollback: the jobs were never recorded; nothing to publish."""
    (session.info.get(PENDING) or {}).clear()
