"""Group commit of single-job POSTs.

gunicorn's gevent workers serve a process's requests concurrently (greenlets;
threads would do as well). Jobs that arrive together share one flush: one
INSERT, one COMMIT and one broker message per kind for all of them, where
each request alone would pay for one of each. A request is answered only
once its job is committed and published, as on its own.

No thread of its own: a request that finds fewer than `leaders` flushes
running leads one; when it is done it hands the lead to a job still waiting.
Before flushing, the leader lets the requests already in the view (`arriving`)
join, and waits for as many jobs as its last group had (under steady load the
same clients come back), until `delay` after the first job of its group
arrived: a job alone is flushed at once, a full group without waiting out the
delay, and a group that came short makes the next one expect fewer.
"""
import threading
import time
from contextlib import contextmanager

from flask import current_app

import ledger
from pg.exceptions import ConnectionLostError, translate
from pg.pool import shared_engine
from service.queue import publish_recorded

EXTENSION = 'group_commit'
ENGINE = 'group_commit_engine'
# Flushes at once per process. One: the next group gathers while the last
# commits, and a second flush at once only split the groups (two of half the
# size cost more per job, on the worker's side too, and went no faster).
LEADERS = 1


class _Waiter:
    __slots__ = ('job', 'arrived', 'leads', 'woken', 'finished', 'job_id', 'error')

    def __init__(self, job):
        self.job = job
        self.arrived = time.monotonic()
        self.leads = False
        self.woken = threading.Event()     # finished, or asked to lead a flush
        self.finished = threading.Event()  # job_id or error is set
        self.job_id = self.error = None

    def outcome(self):
        self.finished.wait()
        if self.error is not None:
            raise self.error
        return self.job_id


class GroupCommit:
    """Runs `flush(jobs) -> ids` over groups of at most `limit` jobs, each job
    the tuple given to `submit` (kind, payload, ...); `flush` commits and
    publishes, or raises. Up to `leaders` flushes run at once: the next group
    gathers while the last one waits for its COMMIT."""

    def __init__(self, flush, limit, delay=0.0, leaders=2):
        self._flush = flush
        self._limit = limit
        self._delay = delay
        self._max_leaders = leaders
        self._lock = threading.Lock()
        self._waiting = []  # submitted, not yet in a group
        self._leaders = 0
        # Requests in `arriving` that have not submitted (yet): a leader waits for them.
        self._on_their_way = 0
        self._local = threading.local()  # greenlet-local under gevent
        self._gathered = threading.Condition(self._lock)
        self._last_size = 0

    def _ready(self):
        """(Under the lock.) The group is full, or as large as the last one
        and nobody else is on the way."""
        waiting = len(self._waiting)
        return waiting >= self._limit or (waiting >= self._last_size and self._on_their_way <= 0)

    def _arrived(self):
        """(Under the lock.) This thread's request submitted, or left without."""
        if getattr(self._local, 'arriving', False):
            self._local.arriving = False
            self._on_their_way -= 1
        if self._ready():
            self._gathered.notify_all()

    @contextmanager
    def arriving(self):
        """Around a request that may submit a job: a leader waits for it."""
        with self._lock:
            self._on_their_way += 1
            self._local.arriving = True
        try:
            yield
        finally:
            with self._lock:
                self._arrived()

    def submit(self, *job):
        """Record and publish one job, (kind, payload, ...), with the others
        waiting; return its id. Raises what the flush of its group raised."""
        me = _Waiter(job)
        with self._lock:
            self._waiting.append(me)
            self._arrived()
            if self._leaders < self._max_leaders:
                self._leaders += 1
                me.leads = True
        if not me.leads:
            me.woken.wait()
        if me.leads:  # from the start, or handed over
            self._lead()
        return me.outcome()

    def _lead(self):
        """Flush the next group (it may hold this leader's job or not), then
        hand the lead to a job still waiting, if any."""
        with self._lock:
            if self._waiting and self._delay:
                # The wait counts from the group's first arrival: jobs that
                # waited out the last flush are sent at once.
                deadline = self._waiting[0].arrived + self._delay
                while not self._ready():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._gathered.wait(left)
            group = self._waiting[:self._limit]
            del self._waiting[:self._limit]
            if group:
                self._last_size = len(group)
        if group:
            self._run(group)
        with self._lock:
            successor = next((w for w in self._waiting if not w.leads), None)
            if successor is None:
                self._leaders -= 1
            else:
                successor.leads = True
        if successor is not None:
            successor.woken.set()

    def _run(self, group):
        try:
            outcomes = self._flush([w.job for w in group])
            for waiter, outcome in zip(group, outcomes):  # an id, or what refused the job
                if isinstance(outcome, BaseException):
                    waiter.error = outcome
                else:
                    waiter.job_id = outcome
        except Exception as error:  # every job of the group gets the answer
            for waiter in group:
                waiter.error = error
        for waiter in group:
            waiter.finished.set()
            waiter.woken.set()


def init_group_commit(app):
    app.extensions[EXTENSION] = GroupCommit(
        _flush, limit=app.config['WORKER_BATCH_SIZE'],
        delay=app.config['FLASK_GROUP_COMMIT_MS'] / 1000, leaders=LEADERS)
    default = app.extensions['pg'].pool.connection().engine
    app.extensions[ENGINE] = shared_engine(
        default.url, pool_size=LEADERS, max_overflow=0, pool_pre_ping=False,
        lock_timeout_ms=app.config['SQLALCHEMY_LOCK_TIMEOUT_MS'],
        pgbouncer=app.config['SQLALCHEMY_PGBOUNCER'])


def _flush(jobs):
    """Record (committed) and publish a group of (kind, payload, request id)
    jobs; return their ids, or for each job the broker refused, its error."""
    ids = _record(jobs)
    by_kind = {}
    for job, job_id in zip(jobs, ids):
        by_kind.setdefault(job[0], []).append(job_id)
    try:
        publish_recorded(by_kind)
    except Exception as error:
        # Refused, but for the jobs a worker took already (accepted after all).
        taken = getattr(error, 'taken', ())
        return [job_id if job_id in taken else error for job_id in ids]
    return ids


def _record(jobs):
    """INSERT and COMMIT a group on a connection of the group commit's own: no
    ORM session and no ping on checkout, the hot path's biggest costs after the
    statement. A connection found dead by the INSERT (nothing was committed) is
    replaced once, as the ping would have done."""
    engine = current_app.extensions[ENGINE]
    for last_try in (False, True):
        with translate():
            conn = engine.connect()
        with conn:
            try:
                ids = ledger.insert_jobs(conn, jobs)
            except ConnectionLostError:
                if last_try:
                    raise
                continue  # the pool dropped its dead connections: take a new one
            with translate():
                conn.commit()
            return ids
