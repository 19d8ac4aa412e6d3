"""The recovery sweep (run by beat): a job whose message the broker lost, or
whose worker died, is found in the ledger and published again."""
import logging

from flask import current_app

from worker import publish

log = logging.getLogger(__name__)

SWEEP_BATCH = 1000

# A running job's row is locked while its worker applies it, so SKIP LOCKED
# passes over live jobs: only a job whose worker is gone can be taken.
STALE_JOBS = '''
UPDATE jobs SET status = :queued, updated_at = now() WHERE id IN (
    SELECT id FROM jobs
    WHERE (status = :queued AND updated_at < now() - make_interval(secs => :queued_age))
       OR (status = :running AND updated_at < now() - make_interval(secs => :running_age))
    ORDER BY id LIMIT :limit
    FOR UPDATE SKIP LOCKED)
RETURNING id, kind
'''


def republish_stale(queued_age, running_age, limit=SWEEP_BATCH):
    """Publish again the jobs left queued longer than `queued_age` seconds and
    those left running (by a dead worker) longer than `running_age`; return
    how many. A duplicate message is harmless: the ledger applies a job once."""
    from tasks.ledger import QUEUED, RUNNING, Job
    db = current_app.extensions['pg']
    rows = Job.objects.raw_sql(STALE_JOBS, queued=QUEUED, running=RUNNING, queued_age=queued_age,
                               running_age=running_age, limit=limit).fetchall()
    db.pool.commit()
    by_kind = {}
    for job_id, kind in rows:
        by_kind.setdefault(kind, []).append(job_id)
    celery = current_app.extensions['celery']
    for kind, ids in by_kind.items():
        if kind in celery.tasks:
            publish(celery, ids, kind)
    if rows:
        log.warning('sweep: published %d stale jobs again', len(rows))
    return len(rows)
