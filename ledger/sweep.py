"""The recovery sweep's read of the ledger: jobs whose message the broker
lost, or whose worker died, taken to be published again."""
from sqlalchemy import text

from ledger.model import Status
from pg.exceptions import translate

# A running job's row is locked while its worker applies it, so SKIP LOCKED
# passes over live jobs: only a job whose worker is gone can be taken.
# A queued job counts only while the broker's queue is empty (:sweep_queued):
# behind a backlog its message is most likely still waiting its turn, and
# publishing it again would only grow the backlog.
STALE = text('''
UPDATE jobs SET status = :queued, updated_at = now() WHERE id IN (
    SELECT id FROM jobs
    WHERE (:sweep_queued AND status = :queued
           AND updated_at < now() - make_interval(secs => :queued_age))
       OR (status = :running AND updated_at < now() - make_interval(secs => :running_age))
    ORDER BY id LIMIT :limit
    FOR UPDATE SKIP LOCKED)
RETURNING id, kind
''')


def take_stale(session, *, queued_age, running_age, sweep_queued, limit):
    """Queue again (committed) the jobs left queued longer than `queued_age`
    seconds (only when `sweep_queued`: the broker's queue is empty) and those
    left running by a dead worker longer than `running_age`; return {kind: ids}."""
    with translate():
        rows = session.execute(STALE, {
            'queued': Status.QUEUED, 'running': Status.RUNNING, 'queued_age': queued_age,
            'running_age': running_age, 'limit': limit, 'sweep_queued': sweep_queued}).all()
        session.commit()
    by_kind = {}
    for job_id, kind in rows:
        by_kind.setdefault(kind, []).append(job_id)
    return by_kind
