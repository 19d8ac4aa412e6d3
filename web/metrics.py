"""GET /metrics: Prometheus text, computed at scrape time from the ledger
(PostgreSQL) and the broker (Redis).

Web and workers are separate processes (containers), so no process counts
jobs itself: the ledger, which every process writes, is the one place that
knows them all. A scrape is one pass over the jobs table (every counter and
the duration histogram come from it), one index look-up for the oldest
queued job plus one look at pg_stat_activity, and one LLEN; scrapes arriving
within a second of one another (threads, several Prometheus) share it.
"""
import logging
import math
import threading
import time

import redis
from flask import Blueprint, Response, current_app
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text

from pg.exceptions import PgError, translate
from tasks import REGISTRY
from tasks.ledger import FAILED, QUEUED, RUNNING, SUCCEEDED

log = logging.getLogger(__name__)

bp = Blueprint('metrics', __name__)

# Upper bounds (seconds) of the duration histogram's buckets, +Inf added.
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
SHARED_SECONDS = 1.0  # a scrape this recent is answered again rather than recomputed
STATEMENT_TIMEOUT_MS = 5000

# One pass: per kind and status, the jobs, their retries (attempts past the
# first) and, for finished jobs, how many took at most each bucket's bound
# from acceptance (created_at) to completion (finished_at).
_BUCKET_COLUMNS = ',\n       '.join(
    f'count(*) FILTER (WHERE seconds <= {bound!r})' for bound in BUCKETS)
LEDGER = text(f'''
SELECT kind, status, count(*), coalesce(sum(attempts - 1) FILTER (WHERE attempts > 1), 0),
       coalesce(sum(seconds), 0),
       {_BUCKET_COLUMNS}
FROM (SELECT kind, status, attempts,
             EXTRACT(EPOCH FROM finished_at - created_at)::float8 AS seconds FROM jobs) AS j
GROUP BY kind, status
''')

# The oldest queued job (ix_jobs_status_created) and the sessions of this
# database waiting for a lock (a hot row).
NOW = text('''
SELECT (SELECT EXTRACT(EPOCH FROM clock_timestamp() - min(created_at))::float8
        FROM jobs WHERE status = :queued),
       (SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock')
''')


class LedgerCollector:
    """A prometheus_client collector; thread-safe (gunicorn's threads scrape
    together): one computes, the others wait for it and answer the same."""

    def __init__(self, app):
        self._app = app
        self._lock = threading.Lock()
        self._families = []
        self._at = -math.inf
        self._redis = None

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
        try:
            families.append(self._queue_depth())
            up.add_metric(['redis'], 1)
        except redis.RedisError as error:
            log.warning('metrics: the broker did not answer: %s', type(error).__name__)
            up.add_metric(['redis'], 0)
        return [*families, up]

    def _ledger(self):
        engine = self._app.extensions['pg'].pool.connection().engine
        with translate(), engine.connect() as conn:
            # LOCAL: the pooled connection is rolled back, its timeout with it, when closed.
            conn.execute(text(f'SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}'))
            rows = conn.execute(LEDGER).all()
            oldest, lock_waits = conn.execute(NOW, {'queued': QUEUED}).one()
        return [*_ledger_families(rows), *_now_families(oldest, lock_waits)]

    def _queue_depth(self):
        if self._redis is None:
            config = self._app.config
            timeout = config['CELERY_PUBLISH_TIMEOUT']
            self._redis = redis.Redis.from_url(config['CELERY_BROKER_URL'],
                                               socket_connect_timeout=timeout,
                                               socket_timeout=timeout)
        queue = self._app.extensions['celery'].conf.task_default_queue
        depth = GaugeMetricFamily('jobs_queue_depth', 'Messages waiting in the broker queue '
                                  '(LLEN), not yet fetched by a worker.', labels=['queue'])
        depth.add_metric([queue], self._redis.llen(queue))
        return depth


def _ledger_families(rows):
    kinds = sorted(set(REGISTRY) | {row[0] for row in rows})
    by_status = {status: dict.fromkeys(kinds, 0) for status in (QUEUED, RUNNING, SUCCEEDED, FAILED)}
    accepted, retried = dict.fromkeys(kinds, 0), dict.fromkeys(kinds, 0)
    histograms = []
    for kind, status, count, retries, seconds, *cumulative in rows:
        accepted[kind] += count
        retried[kind] += int(retries)
        by_status.setdefault(status, dict.fromkeys(kinds, 0))[kind] += count
        if status in (SUCCEEDED, FAILED):
            buckets = [(repr(bound), n) for bound, n in zip(BUCKETS, cumulative)]
            histograms.append(([kind, status], [*buckets, ('+Inf', count)], float(seconds)))

    def counter(name, documentation, values):
        family = CounterMetricFamily(name, documentation, labels=['kind'])
        for kind in kinds:
            family.add_metric([kind], values[kind])
        return family

    unfinished = GaugeMetricFamily('jobs_unfinished', 'Jobs queued or running now.',
                                   labels=['kind', 'status'])
    for status in (QUEUED, RUNNING):
        for kind in kinds:
            unfinished.add_metric([kind, status], by_status[status][kind])
    duration = HistogramMetricFamily(
        'jobs_duration_seconds', 'Seconds from acceptance to completion of finished jobs.',
        labels=['kind', 'status'])
    for labels, buckets, total in histograms:
        duration.add_metric(labels, buckets, total)
    return [
        counter('jobs_accepted', 'Jobs accepted (recorded in the ledger).', accepted),
        counter('jobs_succeeded', 'Jobs applied.', by_status[SUCCEEDED]),
        counter('jobs_failed', 'Jobs failed (permanent error or attempts spent).',
                by_status[FAILED]),
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
