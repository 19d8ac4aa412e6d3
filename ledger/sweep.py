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
# A queued job is taken when its message is nowhere: queued for
# `queued_age`, not held by a worker (:held, the ids of the messages fetched
# and not acked), and older by `lost_age` than the jobs of the oldest message
# waiting in the queue (:oldest; the queue is first in, first out, so its
# message would have been taken before that one). A job whose message waits
# behind a backlog is left alone: publishing it again would grow the backlog.
STALE = text(f'''
UPDATE jobs SET status = :queued, updated_at = now() WHERE id IN (
    SELECT id FROM jobs
    WHERE ((:sweep_queued AND status = :queued
            AND updated_at < now() - make_interval(secs => :queued_age)
            AND id <> ALL(CAST(:held AS bigint[]))
            AND updated_at < coalesce(
                (SELECT min(updated_at) FROM jobs WHERE id = ANY(CAST(:oldest AS bigint[])))
                - make_interval(secs => :lost_age), 'infinity'))
       OR (status = :running AND updated_at < now() - make_interval(secs => :running_age))
       OR (status = :running AND updated_at < now() - make_interval(secs => :lost_age)
           AND claimed_by NOT IN {HELD}))
      AND id <> ALL(CAST(:spared AS bigint[]))
    ORDER BY id LIMIT :limit
    FOR UPDATE SKIP LOCKED)
RETURNING id, kind
''')


def take_stale(session, *, queued_age, running_age, limit, lost_age, held=(), oldest=(),
               spared=(), sweep_queued=True):
    """Queue again (committed) and return {kind: ids} of: the jobs queued
    longer than `queued_age` seconds whose message is lost (not among the
    jobs `held` by workers, and accepted `lost_age` before the jobs of the
    `oldest` message waiting, if any); those running longer than
    `running_age`; and those running for `lost_age` under an owner whose
    lock is gone. The jobs `spared` (their message is on its way again)
    are left out. Without `sweep_queued` no queued job is taken (a queue the
    caller cannot look into has a backlog)."""
    with translate():
        rows = session.execute(STALE, {
            'queued': Status.QUEUED, 'running': Status.RUNNING, 'queued_age': queued_age,
            'running_age': running_age, 'limit': limit, 'lost_age': lost_age,
            'held': id_array(held), 'oldest': id_array(oldest),
            'spared': id_array(spared), 'sweep_queued': sweep_queued}).all()
        session.commit()
    by_kind = {}
    for job_id, kind in rows:
        by_kind.setdefault(kind, []).append(job_id)
    return by_kind
