"""Group commit of single-job POSTs.

gunicorn's gevent workers serve a process's requests concurrently (greenlets;
threads would do as well). Jobs that arrive together share one flush: one
INSERT, one COMMIT and one broker message per kind for all of them (and, for
the hot path's POSTs, one count of each token's rate limits), where each
request alone would pay for one of each. A request is answered only
once its job is committed and published, as on its own.

No thread of its own: a request that finds fewer than `leaders` flushes
running leads one; when it is done it hands the lead to a job still waiting.
Before flushing, the leader waits for as many jobs as there were requests in
the view (`arriving`) at once lately, for at most its wait after the first
job of its group arrived or the last flush ended, whichever is later: under
steady load the same clients come back, so a group goes as soon as they all
are in, not after the wait, and two halves that took turns (one flushing
while the other gathered) merge again. The wait is as long as the process
takes to serve that many requests (its CPU a request, measured), from
MIN_WAIT up to `delay`: a slow process gathers its clients, a quick one
holds nobody for long. A job alone is flushed at once; a group that came
short makes the next one expect fewer. Nor does a group wait for requests
that are not coming: once none is in the view before its submit and none
has come in for a while (a fifth of the wait, or three times a request's
own time in the view if longer), it goes. Below the peak, clients come back
at their own pace, and the count of the requests lately in the view (those
waiting for their flush among them) overstates the next group: at half the
single peak, most groups waited out the whole wait.
"""
import threading
import time
from contextlib import contextmanager

from flask import current_app

import ledger
from pg.exceptions import translate
from pg.pool import on_live_connection, shared_engine
from service.queue import publish_recorded
from web import rate_limits

EXTENSION = 'group_commit'
ENGINE = 'group_commit_engine'
# Flushes at once per process. One: the next group gathers while the last
# commits, and a second flush at once only split the groups (two of half the
# size cost more per job, on the worker's side too, and went no faster).
LEADERS = 1
# A group waits for its clients as long as the process takes to serve the
# requests of as many (the count expected times its CPU a request), from
# MIN_WAIT up to the delay: on a machine where a request costs 0.2 ms, 2 ms
# gave the lowest p99 at half the peak; where it costs 0.7 ms, 2 ms cut the
# groups short (5-23% more CPU a job) and 10 ms did not.
MIN_WAIT = 0.002
# The weight of the last flush's requests in the running mean of the CPU a request.
COST_WEIGHT = 0.125
# A group goes once no request has come in for this share of its wait...
QUIET_SHARE = 0.2
# ...or for this many times a request's own time in the view, if longer: on a
# slow machine, the gap between two requests at the peak.
QUIET_SERVICES = 3
# The weight of the last request in the running mean of the time in the view.
SERVICE_WEIGHT = 0.125


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

    def __init__(self, flush, limit, delay=0.0, leaders=2, min_wait=MIN_WAIT,
                 cpu_clock=time.process_time):
        self._flush = flush
        self._limit = limit
        self._delay = delay
        self._min_wait = min_wait
        self._cpu_clock = cpu_clock  # the process's CPU seconds
        self._max_leaders = leaders
        self._lock = threading.Lock()
        self._waiting = []  # submitted, not yet in a group
        self._leaders = 0
        self._in_view = 0   # requests in `arriving` now
        self._reading = 0   # of those, the ones that have not submitted yet
        self._entered = 0.0  # when the last request came into the view (monotonic)
        self._service = 0.0  # a request's time in the view before its submit, running mean
        self._request = threading.local()  # greenlet-local under gevent
        self._expected = 0  # the group a leader waits for: the most in the view lately
        self._flushed = 0.0  # when the last flush ended (monotonic)
        self._served = 0  # requests that left the view
        self._cost = 0.0  # the process's CPU seconds a request, running mean
        self._cost_mark = None  # (process CPU seconds, requests served) at the last flush
        self._gathered = threading.Condition(self._lock)

    def _ready(self):
        """(Under the lock.) As many jobs wait as the leader expects."""
        return len(self._waiting) >= min(self._limit, self._expected)

    @contextmanager
    def arriving(self):
        """Around a request that may submit a job: it counts in the group a
        leader waits for."""
        request = self._request
        with self._lock:
            request.entered = self._entered = time.monotonic()
            self._in_view += 1
            self._reading += 1
            self._expected = max(self._expected, self._in_view)
        try:
            yield
        finally:
            with self._lock:
                self._in_view -= 1
                self._served += 1
                if request.entered is not None:  # left without a job
                    self._reading -= 1
                request.entered = None

    def _wait(self):
        """(Under the lock.) The longest a group waits for its clients."""
        return min(self._delay, max(self._min_wait, self._expected * self._cost))

    def _quiet_spell(self, wait):
        """(Under the lock.) How long no request must have come in before a
        group stops waiting for more."""
        return max(wait * QUIET_SHARE, QUIET_SERVICES * self._service)

    def _measure(self):
        """(Under the lock, after a flush.) Fold the process's CPU a request
        since the last flush into the running mean: every request's CPU, the
        flushes' and any other request's included."""
        mark = (self._cpu_clock(), self._served)
        last, self._cost_mark = self._cost_mark, mark
        if last is not None and mark[1] > last[1]:
            cost = (mark[0] - last[0]) / (mark[1] - last[1])
            # The first measure stands alone: from 0, the mean took dozens of flushes.
            self._cost += (COST_WEIGHT if self._cost else 1.0) * (cost - self._cost)

    def submit(self, *job):
        """Record and publish one job, (kind, payload, ...), with the others
        waiting; return its id. Raises what the flush of its group raised."""
        me = _Waiter(job)
        entered = getattr(self._request, 'entered', None)
        with self._lock:
            if entered is not None:  # submitted from `arriving`
                self._request.entered = None
                self._reading -= 1
                self._service += SERVICE_WEIGHT * (me.arrived - entered - self._service)
            self._waiting.append(me)
            if self._ready():
                self._gathered.notify_all()
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
                # The wait counts from the group's first arrival, or from the
                # end of the last flush if later: a flush slower than the delay
                # leaves its group's clients on their way back, and the jobs
                # that came meanwhile, sent at once, made a group of a few.
                wait = self._wait()
                deadline = max(self._waiting[0].arrived, self._flushed) + wait
                while not self._ready():
                    now = time.monotonic()
                    left = deadline - now
                    if left <= 0:
                        self._expected = len(self._waiting)  # fewer came: expect fewer
                        break
                    spell = self._quiet_spell(wait)
                    # From the end of the last flush too: its clients are on their way back.
                    if self._reading == 0 and now - max(self._entered, self._flushed) >= spell:
                        break  # none is on its way: the rest of the group is not coming soon
                    self._gathered.wait(min(left, spell))
            group = self._waiting[:self._limit]
            del self._waiting[:self._limit]
        if group:
            self._run(group)
        with self._lock:
            self._flushed = time.monotonic()
            self._measure()
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
    """Count against their rate limits, record (committed) and publish a
    group of (kind, payload, request id, quota) jobs, a quota what
    rate_limits.admitted counts (None: nothing to count); return their ids,
    or for each job past its limit, OverLimit, and for each job the broker
    refused, its error."""
    admitted = rate_limits.admitted(current_app, [job[3] for job in jobs])
    taken = [job[:3] for job, admit in zip(jobs, admitted) if admit]
    outcomes = iter(_record_and_publish(taken) if taken else ())
    return [next(outcomes) if admit else rate_limits.OverLimit() for admit in admitted]


def _record_and_publish(jobs):
    """Record (committed) and publish (kind, payload, request id) jobs;
    return their ids, or for each job the broker refused, its error."""
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
    statement. In a transaction: an INSERT that finds its connection dead was
    not committed, and is sent again on a new one."""
    return on_live_connection(current_app.extensions[ENGINE],
                              lambda conn: ledger.insert_jobs(conn, jobs), finish=_commit)


def _commit(conn):
    with translate():
        conn.commit()
