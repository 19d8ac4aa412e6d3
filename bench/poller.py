"""Latency as a client sees it: POST a job, then poll GET /jobs/<id> until it
is seen succeeded, for a few jobs a second among the load wrk offers.

Each probe is one thread of a small pool with a keep-alive connection of
its own (http.client: the least client work between two polls); probes
start on a fixed schedule, whatever the answers' times, so a slow answer
does not thin out the measurement.
"""
import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

PATH, BODY = '/jobs/genre.create', '{"name":"rock","description":"yeah"}'


def percentile(values, fraction):
    """The nearest-rank percentile of `values` (None if empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


class Poller:
    """Probes at `rate` a second, polling every `poll_ms`, from start() to stop()."""

    def __init__(self, url, rate, poll_ms=2.0, timeout=10.0, threads=16):
        parts = urlsplit(url)
        self._host, self._port = parts.hostname, parts.port
        self._rate = rate
        self._poll = poll_ms / 1000
        self._timeout = timeout
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix='probe')
        self._local = threading.local()
        self._stopping = threading.Event()
        self._results = []  # (accepted s, seen succeeded s or None)
        self._lock = threading.Lock()
        self._thread = None

    def _connection(self):
        if getattr(self._local, 'conn', None) is None:
            self._local.conn = http.client.HTTPConnection(self._host, self._port, timeout=30)
        return self._local.conn

    def _request(self, method, path, body=None):
        conn = self._connection()
        headers = {'Content-Type': 'application/json'} if body else {}
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            self._local.conn = None
            raise

    def _probe(self):
        posted = time.perf_counter()
        status, body = self._request('POST', PATH, BODY)
        accepted = time.perf_counter() - posted
        seen = None
        if status == 202:
            url = json.loads(body)['status_url']
            while time.perf_counter() - posted < self._timeout:
                status, body = self._request('GET', url)
                if status == 200 and json.loads(body)['status'] == 'succeeded':
                    seen = time.perf_counter() - posted
                    break
                time.sleep(self._poll)
        with self._lock:
            self._results.append((accepted if status in (200, 202) else None, seen))

    def _schedule(self):
        started = time.perf_counter()
        sent = 0
        futures = []
        while not self._stopping.is_set():
            due = started + sent / self._rate
            pause = due - time.perf_counter()
            if pause > 0:
                self._stopping.wait(pause)
                continue
            futures.append(self._pool.submit(self._probe))
            sent += 1
        for future in futures:
            try:
                future.result()
            except Exception:  # a probe that lost its connection counts as not seen
                with self._lock:
                    self._results.append((None, None))

    def start(self):
        self._thread = threading.Thread(target=self._schedule, daemon=True)
        self._thread.start()

    def stop(self):
        """Stop sending probes, wait for those under way; return the figures."""
        self._stopping.set()
        self._thread.join()
        self._pool.shutdown()
        accepted = [a for a, _ in self._results if a is not None]
        seen = [s for _, s in self._results if s is not None]

        def ms(value):
            return None if value is None else round(value * 1000, 1)
        return {'probes': len(self._results), 'probes_seen_succeeded': len(seen),
                'probe_post_202_p50_ms': ms(percentile(accepted, 0.5)),
                'probe_post_202_p99_ms': ms(percentile(accepted, 0.99)),
                'post_to_seen_succeeded_p50_ms': ms(percentile(seen, 0.5)),
                'post_to_seen_succeeded_p99_ms': ms(percentile(seen, 0.99))}
