"""Group commit of single-job POSTs.

gunicorn's gthread workers serve a process's requests in threads. The jobs
that arrive while one flush is on its way wait for the next, and share it:
one INSERT, one COMMIT and one broker message per kind for all of them,
where each request alone would pay for one of each. A request is answered
only once its job is committed and published, as on its own.

No thread of its own: the first request to find no flush running leads one;
when it is done it hands the lead to the first job still waiting.
"""
import threading
import time


class _Waiter:
    __slots__ = ('job', 'woken', 'done', 'job_id', 'error')

    def __init__(self, job):
        self.job = job
        self.woken = threading.Event()
        self.done = False
        self.job_id = self.error = None

    def outcome(self):
        if self.error is not None:
            raise self.error
        return self.job_id


class GroupCommit:
    """Runs `flush(jobs) -> ids` over groups of at most `limit` jobs, each job
    a (kind, payload) pair; `flush` commits and publishes, or raises."""

    def __init__(self, flush, limit, delay=0.0):
        self._flush = flush
        self._delay = delay
        self._limit = limit
        self._lock = threading.Lock()
        self._waiting = []
        self._flushing = False

    def submit(self, kind, payload):
        """Record and publish one job with the others waiting; return its id.
        Raises what the flush of its group raised."""
        me = _Waiter((kind, payload))
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
        if self._delay:
            time.sleep(self._delay)  # lets the requests being parsed join this group
        with self._lock:
            group = self._waiting[:self._limit]
            del self._waiting[:self._limit]
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
