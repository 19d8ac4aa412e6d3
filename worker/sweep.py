"""The recovery sweep (run by beat): a job whose message the broker lost, or
whose worker died, is found in the ledger and published again."""
import logging

from flask import current_app
from kombu.exceptions import ChannelError

from worker import publish

log = logging.getLogger(__name__)

SWEEP_BATCH = 1000

# A running job's row is locked while its worker applies it, so SKIP LOCKED
# passes over live jobs: only a job whose worker is gone can be taken.
# A queued job counts only while the broker's queue is empty (:sweep_queued):
# behind a backlog its message is most likely still waiting its turn, and
# publishing it again would only grow the backlog.
STALE_JOBS = '''
UPDATE jobs SET status = :queued, updated_at = now() WHERE id IN (
    SELECT id FROM jobs
    WHERE (:sweep_queued AND status = :queued
           AND updated_at < now() - make_interval(secs => :queued_age))
       OR (status = :running AND updated_at < now() - make_interval(secs => :running_age))
    ORDER BY id LIMIT :limit
    FOR UPDATE SKIP LOCKED)
RETURNING id, kind
'''


def broker_backlog(celery):
    """Messages waiting in the jobs queue (not those a worker has fetched)."""
    with celery.connection_for_write() as conn:
        queue = celery.conf.task_default_queue
        try:
            return conn.default_channel.queue_declare(queue, passive=True).message_count
        except ChannelError:  # the queue does not exist yet: nothing waits
            return 0


def republish_stale(queued_age, running_age, limit=SWEEP_BATCH):
    """Publish again the jobs left queued longer than `queued_age` seconds
    while the queue is empty (their message was lost), and those left running
    by a dead worker longer than `running_age`; return how many. A duplicate
    message is harmless: the ledger applies a job once."""
    from tasks.ledger import QUEUED, RUNNING, Job
    db = current_app.extensions['pg']
    celery = current_app.extensions['celery']
    rows = Job.objects.raw_sql(STALE_JOBS, queued=QUEUED, running=RUNNING, queued_age=queued_age,
                               running_age=running_age, limit=limit,
                               sweep_queued=broker_backlog(celery) == 0).fetchall()
    db.pool.commit()
    by_kind = {}
    for job_id, kind in rows:
        by_kind.setdefault(kind, []).append(job_id)
    for kind, ids in by_kind.items():
        if kind in celery.tasks:
            publish(celery, ids, kind, per_message=current_app.config['WORKER_BATCH_SIZE'])
    if rows:
        log.warning('sweep: published %d stale jobs again', len(rows))
    return len(rows)
