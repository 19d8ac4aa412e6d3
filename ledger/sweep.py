"""The recovery sweep's read of the ledger: jobs whose message the broker
lost, or whose worker died, taken to be published again."""
from sqlalchemy import text

from ledger.model import IN_IDS, Status, id_array, in_ids
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
# waiting in the queue (its ids, IN_IDS; the queue is first in, first out,
# so its message would have been taken before that one). A job whose message
# waits behind a backlog is left alone: publishing it again would grow the
# backlog.
# Found first through the index of unfinished jobs, (status, created_at),
# each kind up to its own bound (a job is created no later than it was last
# updated): under a backlog whose messages all wait, the sweep reads the few
# jobs older than the oldest message, not the backlog (read whole, 300,000
# queued jobs cost 60 ms of PostgreSQL each sweep, every 2 s, 200 with the
# index's dead entries). Checked again on the rows locked: a job finished
# since is left as it is.
_LOST_QUEUED = '''status = :queued AND :sweep_queued
    AND updated_at < (SELECT queued FROM bound)'''
_STALE_RUNNING = f'''status = :running
    AND (updated_at < now() - make_interval(secs => :running_age)
         OR (updated_at < now() - make_interval(secs => :lost_age) AND claimed_by NOT IN {HELD}))'''
STALE = text(f'''
WITH bound AS (
    SELECT least(now() - make_interval(secs => :queued_age), coalesce(
               (SELECT min(updated_at) FROM jobs WHERE {IN_IDS})
               - make_interval(secs => :lost_age), 'infinity')) AS queued,
           now() - make_interval(secs => least(:running_age, :lost_age)) AS running),
found AS MATERIALIZED (
    (SELECT id FROM jobs
     WHERE {_LOST_QUEUED} AND created_at < (SELECT queued FROM bound)
       AND id <> ALL(CAST(:held AS bigint[])) AND id <> ALL(CAST(:spared AS bigint[]))
     ORDER BY created_at LIMIT :limit)
    UNION ALL
    (SELECT id FROM jobs
     WHERE {_STALE_RUNNING} AND created_at < (SELECT running FROM bound)
       AND id <> ALL(CAST(:spared AS bigint[]))))
UPDATE jobs SET status = :queued, updated_at = now() WHERE id IN (
    SELECT id FROM jobs
    WHERE id = ANY(ARRAY(SELECT id FROM found)) AND (({_LOST_QUEUED}) OR ({_STALE_RUNNING}))
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
        rows = session.execute(STALE, stale_parameters(
            queued_age=queued_age, running_age=running_age, limit=limit, lost_age=lost_age,
            held=held, oldest=oldest, spared=spared, sweep_queued=sweep_queued)).all()
        session.commit()
    by_kind = {}
    for job_id, kind in rows:
        by_kind.setdefault(kind, []).append(job_id)
    return by_kind


def stale_parameters(*, queued_age, running_age, limit, lost_age, held=(), oldest=(),
                     spared=(), sweep_queued=True):
    """STALE's bound parameters for take_stale's arguments."""
    return {'queued': Status.QUEUED, 'running': Status.RUNNING, 'queued_age': queued_age,
            'running_age': running_age, 'limit': limit, 'lost_age': lost_age,
            'held': id_array(held), **in_ids(oldest), 'spared': id_array(spared),
            'sweep_queued': sweep_queued}
