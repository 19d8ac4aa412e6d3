"""The recovery sweep (run by beat): a job whose message the broker lost, or
whose worker died, is found in the ledger and published again."""
import logging

from flask import current_app

import ledger
from service.brokers import queue_depth
from service.queue import publish, queues
from tasks import REGISTRY

log = logging.getLogger(__name__)

SWEEP_BATCH = 1000


def broker_backlog(celery):
    """Messages waiting in the jobs' queues, all priorities (not those a worker has fetched)."""
    with celery.connection_for_write() as conn:
        # kombu's Redis channel counts every priority list of a queue.
        return sum(queue_depth(conn, queue) for queue in queues(celery))


def republish_stale(queued_age, running_age, limit=SWEEP_BATCH):
    """Publish again the jobs left queued longer than `queued_age` seconds
    while the queue is empty (their message was lost), and those left running
    by a dead worker longer than `running_age`; return how many. A duplicate
    message is harmless: the ledger applies a job once."""
    celery = current_app.extensions['celery']
    session = current_app.extensions['pg'].pool.connection().session
    by_kind = ledger.take_stale(session, queued_age=queued_age, running_age=running_age,
                                sweep_queued=broker_backlog(celery) == 0, limit=limit)
    for kind, ids in by_kind.items():
        if kind in REGISTRY:
            publish(celery, ids, kind, per_message=current_app.config['WORKER_BATCH_SIZE'])
    count = sum(len(ids) for ids in by_kind.values())
    if count:
        log.warning('sweep: published %d stale jobs again', count)
    return count
