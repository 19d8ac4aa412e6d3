"""GET /metrics: Prometheus text, computed at scrape time from the ledger
(PostgreSQL) and the broker (Redis or RabbitMQ).

Web and workers are separate processes (containers), so no process counts
jobs itself: the ledger, which every process writes, is the one place that
knows them all. Each process's collector keeps the totals of the jobs it
has seen settled: the jobs below the oldest unfinished one and older than
SETTLE_SECONDS (no transaction still inserting one of them) are finished
and stay so. A scrape then reads by primary key only the jobs past them
(the backlog and the last SETTLE_SECONDS), plus one small statement of index
look-ups (the bounds, the oldest queued job, the lock waits) and one
passive declare of the queue (Redis: LLEN);
the first scrape of a process reads the whole ledger once. A settled job
queued again (POST /jobs/<id>/retry) or an emptied ledger makes the next
scrape start over. Scrapes within a second of one another (threads, several
Prometheus) share one computation.
"""
import logging
import math
import threading
import time

from flask import Blueprint, Response, current_app
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text

from ledger import MAX_JOB_ID, Status, stats
from pg.exceptions import PgError, translate
from service import brokers
from service.queue import queues
from tasks import REGISTRY

log = logging.getLogger(__name__)

bp = Blueprint('metrics', __name__)

SHARED_SECONDS = 1.0  # a scrape this recent is answered again rather than recomputed
SETTLE_SECONDS = 30  # far longer than any transaction that inserts jobs
STATEMENT_TIMEOUT_MS = 5000
# Reading a whole large ledger once may take longer: the scrape that pays for
# it may time out in Prometheus, the next one finds the totals kept.
FIRST_PASS_TIMEOUT_MS = 300000
TIMEOUT = text("SELECT set_config('statement_timeout', :ms, true)")


def _add(into, rows):
    """Sum TOTALS rows into {(kind, status): [count, retries, seconds, *buckets]}."""
    for kind, status, *numbers in rows:
        found = into.setdefault((kind, status), [0] * len(numbers))
        for i, number in enumerate(numbers):
            found[i] += number
    return into


class LedgerCollector:
    """A prometheus_client collector; thread-safe (gunicorn's threads scrape
    together): one computes, the others wait for it and answer the same."""

    def __init__(self, app):
        self._app = app
        self._lock = threading.Lock()
        self._families = []
        self._at = -math.inf
        self._forget()

    def _forget(self):
        # The totals of the jobs with id <= _through, all finished when read; the
        # created_at of the newest of them, to notice the ledger was emptied.
        self._settled = {}
        self._through = 0
        self._mark = (None, None)

    def collect(self):
        with self._lock:
            if time.monotonic() - self._at > SHARED_SECONDS:
                self._families = self._compute()
                self._at = time.monotonic()
            return list(self._families)

    def _compute(self):
        up = GaugeMetricFamily('jobs_metrics_up', 'Whether the source of the metrics answered '
                               'this scrape (1) or not (0).', labels=['source'])
        families = []
        try:
            families += self._ledger()
            up.add_metric(['postgres'], 1)
        except PgError as error:
            log.warning('metrics: the database did not answer: %s', type(error).__name__)
            up.add_metric(['postgres'], 0)
        probe = brokers.probe(self._app)
        try:
            families.append(self._queue_depth(probe))
            up.add_metric([probe.kind], 1)
        except brokers.BrokerUnavailable as error:
            log.warning('metrics: the broker did not answer: %s', type(error.__cause__).__name__)
            up.add_metric([probe.kind], 0)
        return [*families, up]

    def _ledger(self):
        engine = self._app.extensions['pg'].pool.connection().engine
        with translate(), engine.connect() as conn:
            # Local to the transaction: rolled back with it when the connection is closed.
            conn.execute(TIMEOUT, {'ms': str(STATEMENT_TIMEOUT_MS)})
            mark_id, mark_created = self._mark
            unfinished, old_enough, still, oldest, lock_waits = stats.bounds(
                conn, SETTLE_SECONDS, mark_id)
            if still != mark_created or (unfinished is not None and unfinished <= self._through):
                self._forget()  # emptied, or a settled job queued again: read it all anew
            settled = min(old_enough or 0, MAX_JOB_ID if unfinished is None else unfinished - 1)
            if settled > self._through:
                conn.execute(TIMEOUT, {'ms': str(FIRST_PASS_TIMEOUT_MS)})
                rows = stats.totals(conn, self._through, settled)
                conn.execute(TIMEOUT, {'ms': str(STATEMENT_TIMEOUT_MS)})
                last = stats.last_job(conn, settled)
                _add(self._settled, rows)
                # Up to the newest job there is: ids past it are new jobs, whatever happened.
                self._through, self._mark = (last[0], last) if last else (0, (None, None))
            recent = stats.totals(conn, self._through, MAX_JOB_ID)
        totals = _add({key: list(numbers) for key, numbers in self._settled.items()}, recent)
        return [*_ledger_families(totals), *_now_families(oldest, lock_waits)]

    def _queue_depth(self, probe):
        depth = GaugeMetricFamily('jobs_queue_depth', 'Messages waiting in the broker queue '
                                  '(all priorities), not yet fetched by a worker.',
                                  labels=['queue'])
        for queue in queues(self._app.extensions['celery']):
            depth.add_metric([queue], probe.depth(queue))
        return depth


def _ledger_families(totals):
    kinds = sorted(set(REGISTRY) | {kind for kind, _ in totals})
    by_status = {status: dict.fromkeys(kinds, 0) for status in Status}
    accepted, retried = dict.fromkeys(kinds, 0), dict.fromkeys(kinds, 0)
    histograms = []
    for (kind, status), (count, retries, seconds, *cumulative) in sorted(totals.items()):
        accepted[kind] += count
        retried[kind] += int(retries)
        by_status.setdefault(status, dict.fromkeys(kinds, 0))[kind] += count
        if status in Status.finished():
            buckets = [(repr(bound), n) for bound, n in zip(stats.BUCKETS, cumulative)]
            histograms.append(([kind, status], [*buckets, ('+Inf', count)], float(seconds)))

    def counter(name, documentation, values):
        family = CounterMetricFamily(name, documentation, labels=['kind'])
        for kind in kinds:
            family.add_metric([kind], values[kind])
        return family

    unfinished = GaugeMetricFamily('jobs_unfinished', 'Jobs scheduled, queued or running now.',
                                   labels=['kind', 'status'])
    for status in (Status.SCHEDULED, Status.QUEUED, Status.RUNNING):
        for kind in kinds:
            unfinished.add_metric([kind, status], by_status[status][kind])
    duration = HistogramMetricFamily(
        'jobs_duration_seconds', 'Seconds from acceptance to completion of finished jobs.',
        labels=['kind', 'status'])
    for labels, buckets, total in histograms:
        duration.add_metric(labels, buckets, total)
    return [
        counter('jobs_accepted', 'Jobs accepted (recorded in the ledger).', accepted),
        counter('jobs_succeeded', 'Jobs applied.', by_status[Status.SUCCEEDED]),
        counter('jobs_failed', 'Jobs failed (permanent error or attempts spent).',
                by_status[Status.FAILED]),
        counter('jobs_cancelled', 'Jobs cancelled before they ran.', by_status[Status.CANCELLED]),
        counter('jobs_retried', 'Attempts past the first (transient errors, lost workers).',
                retried),
        unfinished, duration,
    ]


def _now_families(oldest, lock_waits):
    age = GaugeMetricFamily('jobs_oldest_queued_age_seconds',
                            'Age of the oldest queued job (0: none queued).')
    age.add_metric([], max(float(oldest or 0), 0.0))
    waits = GaugeMetricFamily('jobs_lock_waits', 'Sessions of the database waiting for a '
                              'lock now (a hot row).')
    waits.add_metric([], lock_waits)
    return [age, waits]


def init_metrics(app):
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(app))
    app.extensions['metrics'] = registry
    app.register_blueprint(bp)


@bp.get('/metrics')
def metrics():
    """Prometheus text (open without a token, as /health)."""
    return Response(generate_latest(current_app.extensions['metrics']),
                    content_type=CONTENT_TYPE_LATEST)
