"""GET /metrics: Prometheus text, computed at scrape time from the ledger
(PostgreSQL) and the broker (Redis or RabbitMQ).

Web and workers are separate processes (containers), so no process counts
jobs itself: the ledger, which every process writes, keeps the tallies of
job events (table job_counts, ledger.counts), each counted in the
transaction of the change it counts, so the counters never go down (a
retry, pruning) and a scrape reads a few hundred rows whatever the size of
the ledger, the first one after a restart too. The gauges read the
unfinished jobs (small partial indexes), the lock waits and one passive
declare of each queue (Redis: LLEN).
Scrapes within a second of one another (threads, several Prometheus) share
one computation.
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

from ledger import Status, stats
from pg.exceptions import PgError, translate
from service import brokers
from service.queue import queues
from tasks import REGISTRY

log = logging.getLogger(__name__)

bp = Blueprint('metrics', __name__)

SHARED_SECONDS = 1.0  # a scrape this recent is answered again rather than recomputed
STATEMENT_TIMEOUT_MS = 5000
TIMEOUT = text("SELECT set_config('statement_timeout', :ms, true)")


class LedgerCollector:
    """A prometheus_client collector; thread-safe (gunicorn's threads scrape
    together): one computes, the others wait for it and answer the same."""

    def __init__(self, app):
        self._app = app
        self._lock = threading.Lock()
        self._families = []
        self._at = -math.inf

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
            counted = stats.totals(conn)
            unfinished = stats.unfinished(conn)
            oldest, lock_waits = stats.now(conn)
        return [*_ledger_families(counted, unfinished), *_now_families(oldest, lock_waits)]

    def _queue_depth(self, probe):
        depth = GaugeMetricFamily('jobs_queue_depth', 'Messages waiting in the broker queue '
                                  '(all priorities), not yet fetched by a worker.',
                                  labels=['queue'])
        for queue in queues(self._app.extensions['celery']):
            depth.add_metric([queue], probe.depth(queue))
        return depth


def _ledger_families(counted, unfinished_rows):
    kinds = sorted(set(REGISTRY) | {kind for kind, _ in counted}
                   | {kind for kind, _, _ in unfinished_rows})

    def counter(name, documentation, event):
        family = CounterMetricFamily(name, documentation, labels=['kind'])
        for kind in kinds:
            family.add_metric([kind], counted.get((kind, event), (0,))[0])
        return family

    unfinished = GaugeMetricFamily('jobs_unfinished', 'Jobs scheduled, queued or running now.',
                                   labels=['kind', 'status'])
    now = {(kind, status): count for kind, status, count in unfinished_rows}
    for status in (Status.SCHEDULED, Status.QUEUED, Status.RUNNING):
        for kind in kinds:
            unfinished.add_metric([kind, status], now.get((kind, status), 0))
    duration = HistogramMetricFamily(
        'jobs_duration_seconds', 'Seconds from acceptance to completion of finished jobs.',
        labels=['kind', 'status'])
    for (kind, event), (total, seconds, cumulative) in sorted(counted.items()):
        if event in Status.finished():
            buckets = [(repr(bound), n) for bound, n in zip(stats.BUCKETS, cumulative)]
            duration.add_metric([kind, event], [*buckets, ('+Inf', total)], seconds)
    return [
        counter('jobs_accepted', 'Jobs accepted (recorded in the ledger).', 'accepted'),
        counter('jobs_succeeded', 'Jobs applied.', Status.SUCCEEDED),
        counter('jobs_failed', 'Job failures (permanent error or attempts spent; a job '
                'retried by an operator that fails again counts again).', Status.FAILED),
        counter('jobs_cancelled', 'Jobs cancelled before they ran.', Status.CANCELLED),
        counter('jobs_retried', 'Attempts past the first (transient errors, lost workers).',
                'retried'),
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
