"""The recovery sweep (run by beat): a job whose message the broker lost is
found in the ledger, still queued, and published again."""
import logging

from flask import current_app
from sqlalchemy import text

from worker import publish

log = logging.getLogger(__name__)

SWEEP_BATCH = 1000


def republish_stale(age_seconds, limit=SWEEP_BATCH):
    """Publish again the jobs left queued longer than `age_seconds`; return
    how many. A duplicate message is harmless: the ledger applies a job once."""
    db = current_app.extensions['pg']
    from tasks.ledger import Job
    rows = Job.objects.raw_sql(
        'UPDATE jobs SET updated_at = now() WHERE id IN ('
        ' SELECT id FROM jobs WHERE status = :queued'
        "  AND updated_at < now() - make_interval(secs => :age)"
        ' ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)'
        ' RETURNING id, kind',
        queued='queued', age=age_seconds, limit=limit).fetchall()
    db.pool.commit()
    by_kind = {}
    for job_id, kind in rows:
        by_kind.setdefault(kind, []).append(job_id)
    celery = current_app.extensions['celery']
    for kind, ids in by_kind.items():
        if kind in celery.tasks:
            publish(celery, ids, kind)
    if rows:
        log.warning('sweep: published %d stale queued jobs again', len(rows))
    return len(rows)
