"""The recovery sweep (run by beat, worker.beat): a dead worker's messages
are handed back to the queue, and jobs whose message the broker lost, or
whose worker died, are found in the ledger and published again.

A live worker refreshes, every second, the delivery time Redis keeps for
each message it has fetched and not acked (worker.broker). A message not
refreshed for WORKER_LOST_SECONDS belonged to a worker that died: it goes
back to the head of the queue (the end workers take from next), so the
dead worker's jobs, claimed or only prefetched, run again at once, not
behind the backlog and not after the broker's visibility timeout.

On RabbitMQ, which hands a dead consumer's messages back at once and shows
no message it holds, the queued jobs are looked at only while every queue
is empty (a job behind a backlog has its message waiting)."""
import base64
import json
import logging
import time

from flask import current_app
from kombu.transport.redis import Mutex, MutexHeld

import ledger
from service import brokers
from service.queue import publish, queues
from tasks import REGISTRY
from worker.broker import HEAD_TRANSPORT

log = logging.getLogger(__name__)

SWEEP_BATCH = 1000


def _on_redis(celery):
    return brokers.kind(celery.conf.broker_url) == brokers.REDIS


def backlog(celery, names):
    """Messages waiting in the queues `names`, all priorities (not those a
    worker has fetched)."""
    if not names:
        return 0
    with celery.connection_for_write() as conn:
        return sum(brokers.queue_depth(conn, queue) for queue in names)


def in_flight(celery):
    """(ids of the jobs of the oldest message waiting in the jobs queue,
    ids of the jobs of the messages fetched and not acked)."""
    with celery.connection_for_write() as conn:
        channel = conn.default_channel
        client = channel.client
        oldest = client.lindex(celery.conf.task_default_queue, -1)  # BRPOP takes from the right
        held = [i for raw in client.hvals(channel.unacked_key) for i in message_job_ids(raw)]
    return (message_job_ids(oldest, entry=False) if oldest else []), held


def message_job_ids(raw, entry=True):
    """The job ids a message of the Redis transport carries (an unacked
    entry: [message, exchange, routing key])."""
    try:
        message = json.loads(raw)[0] if entry else json.loads(raw)
        [arg], _, _ = json.loads(base64.b64decode(message['body']))
        return arg if isinstance(arg, list) else [arg]
    except (ValueError, KeyError, TypeError):
        return []


def hand_back_orphans(celery, lost_seconds):
    """Put back at the head of their queue the messages fetched and not
    acked whose worker has not refreshed them for `lost_seconds`; return the
    ids of their jobs."""
    ids = []
    with celery.connection_for_write() as conn:
        channel = conn.default_channel
        client = channel.client
        orphans = client.zrange(channel.unacked_index_key, 0, time.time() - lost_seconds,
                                byscore=True)
        if not orphans:
            return ids
        try:
            # Kombu's own lock over the unacked messages (its restore takes it too).
            with Mutex(client, channel.unacked_mutex_key, channel.unacked_mutex_expire):
                for tag in orphans:
                    raw = client.hget(channel.unacked_key, tag)
                    if raw is not None:
                        ids.extend(message_job_ids(raw))
                        channel.qos.restore_by_tag(tag, client, leftmost=False)
        except MutexHeld:
            return ids
    if ids:
        log.warning('sweep: handed back %d messages of a lost worker (%d jobs)',
                    len(orphans), len(ids))
    return ids


def republish_stale(queued_age, running_age, limit=SWEEP_BATCH, lost_age=5.0, spared=()):
    """Publish again the jobs whose message is lost (queued longer than
    `queued_age` seconds, neither held by a worker nor waiting in the
    queue), those left running longer than `running_age`, and those
    running for `lost_age` under a dead owner (but the jobs `spared`);
    return how many. A duplicate message is harmless: the ledger applies a
    job once."""
    celery = current_app.extensions['celery']
    session = current_app.extensions['pg'].pool.connection().session
    on_redis = _on_redis(celery)
    # The kinds' own queues are not looked into: a backlog there spares the queued jobs.
    others = [queue for queue in queues(celery) if queue != celery.conf.task_default_queue]
    oldest, held = in_flight(celery) if on_redis else ([], [])
    sweep_queued = backlog(celery, others if on_redis else queues(celery)) == 0
    by_kind = ledger.take_stale(session, queued_age=queued_age, running_age=running_age,
                                limit=limit, lost_age=lost_age, held=held, oldest=oldest,
                                spared=spared, sweep_queued=sweep_queued)
    if by_kind:
        # At the head of the queue (Redis): they have waited their turn already.
        options = {'transport': HEAD_TRANSPORT} if on_redis else {}
        with celery.connection_for_write(**options) as head:
            for kind, ids in by_kind.items():
                if kind in REGISTRY:
                    publish(celery, ids, kind, per_message=current_app.config['WORKER_BATCH_SIZE'],
                            connection=head)
    count = sum(len(ids) for ids in by_kind.values())
    if count:
        log.warning('sweep: published %d stale jobs again', count)
    return count


def recover(config):
    """One sweep: the lost workers' messages handed back, then the stale
    jobs published again; return how many jobs were sent again. The
    tallies of ended sessions are folded together meanwhile."""
    session = current_app.extensions['pg'].pool.connection().session
    ledger.fold_counts(session)
    session.commit()
    lost = config['WORKER_LOST_SECONDS']
    celery = current_app.extensions['celery']
    handed_back = hand_back_orphans(celery, lost) if _on_redis(celery) else []
    return len(handed_back) + republish_stale(
        config['WORKER_SWEEP_AGE_SECONDS'], config['WORKER_STALE_RUNNING_SECONDS'],
        lost_age=lost, spared=handed_back)
