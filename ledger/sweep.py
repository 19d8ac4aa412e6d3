"""The recovery sweep's read of the ledger: jobs whose message the broker
lost, or whose worker died, taken to be published again."""
from sqlalchemy import text

from ledger.model import Status, id_array
from ledger.owners import HELD
from pg.exceptions import translate

# A running job's row is locked while its worker applies it, so SKIP LOCKED
# passes over live jobs. A running job is taken when its owner's advisory
# lock is no longer held (the worker died; after `lost_age`, so that the
# broker's copy of its message, handed back by the sweep, goes first), or,
# whoever claimed it, after `running_age`.
# A queued job counts only while the broker's queue is empty (:sweep_queued):
# behind a backlog its message is most likely still waiting its turn, and
# publishing it again would only grow the backlog.
STALE = text(f'''
UPDATE jobs SET status = :queued, updated_at = now() WHERE id IN (
    SELECT id FROM jobs
    WHERE ((:sweep_queued AND status = :queued
            AND updated_at < now() - make_interval(secs => :queued_age))
       OR (status = :running AND updated_at < now() - make_interval(secs => :running_age))
       OR (status = :running AND updated_at < now() - make_interval(secs => :lost_age)
           AND claimed_by NOT IN {HELD}))
      AND id <> ALL(CAST(:spared AS bigint[]))
    ORDER BY id LIMIT :limit
    FOR UPDATE SKIP LOCKED)
RETURNING id, kind
''')


def take_stale(session, *, queued_age, running_age, sweep_queued, limit, lost_age=None,
               spared=()):
    """Queue again (committed) the jobs left queued longer than `queued_age`
    seconds (only when `sweep_queued`: the broker's queue is empty), those
    left running longer than `running_age`, and those running for
    `lost_age` under an owner whose lock is gone, but the jobs `spared`
    (their message is on its way again); return {kind: ids}."""
    with translate():
        rows = session.execute(STALE, {
            'queued': Status.QUEUED, 'running': Status.RUNNING, 'queued_age': queued_age,
            'running_age': running_age, 'limit': limit, 'sweep_queued': sweep_queued,
            'lost_age': running_age if lost_age is None else lost_age,
            'spared': id_array(spared)}).all()
        session.commit()
    by_kind = {}
    for job_id, kind in rows:
        by_kind.setdefault(kind, []).append(job_id)
    return by_kind
