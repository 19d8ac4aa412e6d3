"""Group commit of single-job POSTs.

gunicorn's gevent workers serve a process's requests concurrently (greenlets;
threads would do as well). Jobs that arrive together share one flush: one
INSERT, one COMMIT and one broker message per kind for all of them, where
each request alone would pay for one of each. A request is answered only once its job is committed and published,
as on its own.

No thread of its own: the first request to find no flush running leads one;
when it is done it hands the lead to the first job still waiting. Before
flushing, the leader lets the requests on their way join until `delay` after
the first job of its group arrived (so jobs that waited out the last flush go
at once), unless it is alone now and was alone in the last group.
"""
import threading
import time
from contextlib import contextmanager


class _Waiter:
    __slots__ = ('job', 'arrived', 'woken', 'done', 'job_id', 'error')

    def __init__(self, job):
        self.job = job
        self.arrived = time.monotonic()
        self.woken = threading.Event()
        self.done = False
        self.job_id = self.error = None

    def outcome(self):
        if self.error is not None:
            raise self.error
        return self.job_id


class GroupCommit:
    """Runs `flush(jobs) -> ids` over groups of at most `limit` jobs, each job
    the tuple given to `submit` (kind, payload, ...); `flush` commits and
    publishes, or raises."""

    def __init__(self, flush, limit, delay=0.0):
        self._flush = flush
        self._limit = limit
        self._delay = delay
        self._lock = threading.Lock()
        self._waiting = []
        self._flushing = False
        self._arriving = 0
        self._last_size = 0

    @contextmanager
    def arriving(self):
        """Around a request that may submit a job: the leader waits for it."""
        with self._lock:
            self._arriving += 1
        try:
            yield
        finally:
            with self._lock:
                self._arriving -= 1

    def submit(self, *job):
        """Record and publish one job, (kind, payload, ...), with the others
        waiting; return its id. Raises what the flush of its group raised."""
        me = _Waiter(job)
        with self._lock:
            self._waiting.append(me)
            lead = not self._flushing
            self._flushing = True
        if not lead:
            me.woken.wait()
            if me.done:
                return me.outcome()
        self._lead()
        return me.outcome()

    def _lead(self):
        if self._delay and (self._arriving > 1 or self._last_size > 1):
            # Others are on their way (or were, a moment ago): let them join
            # rather than flush a group of one. The wait counts from the first
            # arrival: jobs that waited out the last flush are sent at once.
            left = self._delay - (time.monotonic() - self._waiting[0].arrived)
            if left > 0:
                time.sleep(left)
        with self._lock:
            group = self._waiting[:self._limit]
            del self._waiting[:self._limit]
            self._last_size = len(group)
        try:
            ids = self._flush([w.job for w in group])
            for waiter, job_id in zip(group, ids):
                waiter.job_id = job_id
        except Exception as error:  # every job of the group gets the answer
            for waiter in group:
                waiter.error = error
        with self._lock:
            successor = self._waiting[0] if self._waiting else None
            self._flushing = successor is not None
        for waiter in group:
            waiter.done = True
            waiter.woken.set()
        if successor is not None:
            successor.woken.set()  # not done: it leads the next flush
