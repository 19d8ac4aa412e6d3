"""Beat's due pass: every WORKER_DUE_EVERY_SECONDS, the scheduled jobs whose
time has come are queued and published, and the periodic jobs whose slot has
come are enqueued. It runs on a thread of the beat process (not as a Celery
task: behind a backlog of messages it would wait its turn), and any number
of beats may run: the ledger hands each due job to one of them (SKIP
LOCKED), and each periodic slot is one idempotency key."""
import hashlib
import json
import logging
import threading
import time

import ledger
from service import periodic
from service.queue import publish, publish_recorded
from tasks import REGISTRY

log = logging.getLogger(__name__)

DUE_BATCH = 5000  # jobs queued per statement; a pass takes as many as are due
QUIET_SECONDS = 30  # between two log lines about the same failing pass


def publish_due(app, limit=DUE_BATCH):
    """Queue and publish every scheduled job due now; return how many. Jobs
    whose messages the broker refuses go back to wait for the next pass."""
    session = app.extensions['pg'].pool.connection().session
    celery = app.extensions['celery']
    total = 0
    while True:
        by_kind = ledger.take_due(session, limit)
        taken = [job_id for ids in by_kind.values() for job_id in ids]
        try:
            for kind, ids in by_kind.items():
                publish(celery, ids, kind, per_message=app.config['WORKER_BATCH_SIZE'])
        except Exception:
            ledger.return_due(session, taken)
            raise
        total += len(taken)
        if len(taken) < limit:
            return total


def _digest(kind, payload):
    return hashlib.sha256(json.dumps([kind, payload], sort_keys=True).encode()).hexdigest()


def enqueue_periodic(app, done, now=None):
    """Enqueue the latest slot of each periodic job unless it was already (by
    this beat: `done`, {name: slot}; or another: the ledger's key). Returns
    the ids enqueued."""
    now = now or periodic.utc_now()
    session = app.extensions['pg'].pool.connection().session
    enqueued = []
    for entry in app.extensions['periodic']:
        slot = entry.latest_slot(now)
        if done.get(entry.name) == slot:
            continue
        kind = REGISTRY[entry.kind]
        try:
            ids, created = ledger.record(
                session, kind.name, [kind.stored_payload(entry.payload)], scope=periodic.SCOPE,
                keys=[entry.key(slot)], digests=[_digest(kind.name, entry.payload)])
            session.commit()
        except ledger.IdempotencyConflict:  # the slot was enqueued with another payload
            session.rollback()
            created = False
        if created:
            publish_recorded({kind.name: ids})  # refused: withdrawn, tried again next pass
            enqueued += ids
            log.info('periodic job %s: slot %s enqueued (job %s)', entry.name,
                     slot.isoformat(), ids[0], extra={'job_id': ids[0]})
        done[entry.name] = slot
    return enqueued


class DuePass(threading.Thread):
    """The loop, on a daemon thread: it dies with beat. A pass that fails
    (database or broker away) is logged and tried again at the next tick."""

    def __init__(self, app):
        super().__init__(name='due-pass', daemon=True)
        self.app = app
        self.every = app.config['WORKER_DUE_EVERY_SECONDS']
        self.stopping = threading.Event()
        self._done = {}
        self._last_complaint = -QUIET_SECONDS

    def run(self):
        while not self.stopping.is_set():
            started = time.monotonic()
            self.tick()
            self.stopping.wait(max(0.0, self.every - (time.monotonic() - started)))

    def tick(self):
        try:
            with self.app.app_context():
                enqueue_periodic(self.app, self._done)
                publish_due(self.app)
        except Exception as error:  # noqa: BLE001 - the loop outlives any one pass
            if time.monotonic() - self._last_complaint >= QUIET_SECONDS:
                self._last_complaint = time.monotonic()
                log.warning('due pass failed (%s: %s): trying again', type(error).__name__,
                            str(error).splitlines()[0][:200] if str(error) else '')


def start(app):
    """Start the due pass of this (beat) process; return its thread."""
    thread = DuePass(app)
    thread.start()
    return thread
