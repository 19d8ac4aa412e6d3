"""A ledger that runs for years, in-process against the real database and
broker (Redis db TEST_BROKER_URL, 8 by default; no worker runs): pruning
by outcome age, the idempotency window, keyset listings through indexes."""
import os

import pytest
from sqlalchemy import text

import ledger
from ledger.counts import BUCKETS
from tests.integration.service import service_fixtures

BROKER_URL = os.environ.get('TEST_BROKER_URL', 'redis://127.0.0.1:6379/8')
GENRE = {'name': 'jazz', 'description': 'swing'}
DAY = 86400
BUCKET_OF_ONE_SECOND = BUCKETS.index(1.0)

broker, make_app, clean, app, client = service_fixtures(BROKER_URL)


def sql(app, statement, **params):
    with app.extensions['pg'].pool.connection().engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return result.fetchall() if result.returns_rows else None


def age(app, ids, status, days_ago, finished_days_ago=None):
    """Make the jobs `ids` so, accepted `days_ago` (finished after, if finished)."""
    sql(app, "UPDATE jobs SET status = :s, created_at = now() - make_interval(days => :d), "
             "updated_at = now() - make_interval(days => :f), "
             "finished_at = CASE WHEN CAST(:s AS varchar) IN ('succeeded', 'failed', 'cancelled') "
             "THEN now() - make_interval(days => :f) END WHERE id = ANY(:ids)",
        s=status, d=days_ago, f=days_ago if finished_days_ago is None else finished_days_ago,
        ids=list(ids))


def prune(app, **overrides):
    ages = {'succeeded': 7 * DAY, 'failed': 30 * DAY}
    with app.app_context():
        return ledger.prune(app.extensions['pg'].pool.connection().session,
                            {**ages, **overrides}, key_window=DAY, batch=3)


def remaining(app):
    return {row[0] for row in sql(app, 'SELECT id FROM jobs')}


def batch(client, count, kind='genre.create', payload=GENRE):
    response = client.post(f'/jobs/{kind}/batch', json=[payload] * count)
    assert response.status_code == 202, response.get_json()
    return response.get_json()['ids']


def test_prune_deletes_finished_jobs_past_their_outcomes_age_and_nothing_unfinished(app, client):
    # The oldest ids: accepted 60 days ago, retried and succeeded yesterday.
    # Kept, and more of them than a batch: the walk passes over them.
    lately = batch(client, 4)
    age(app, lately, 'succeeded', 60, finished_days_ago=1)
    ids = batch(client, 24)
    old_ok, young_ok, old_failed, young_failed = ids[:5], ids[5:8], ids[8:13], ids[13:15]
    old_queued, old_running, retried = ids[15:18], ids[18:21], ids[21:24]
    age(app, old_ok, 'succeeded', 10)
    age(app, young_ok, 'succeeded', 6)
    age(app, old_failed, 'failed', 40)
    age(app, young_failed, 'failed', 20)
    age(app, old_queued, 'queued', 60)
    age(app, old_running, 'running', 60)
    # Accepted 60 days ago, failed then, retried today: queued, not pruned.
    age(app, retried, 'failed', 60)
    for job_id in retried:
        assert client.post(f'/jobs/{job_id}/retry').status_code == 202

    assert prune(app) == {'succeeded': 5, 'failed': 5}  # in batches of 3
    assert remaining(app) == set(lately) | set(ids) - set(old_ok) - set(old_failed)
    assert prune(app) == {'succeeded': 0, 'failed': 0}
    # However short the retention, an unfinished job stays.
    assert prune(app, succeeded=0.001, failed=0.001) == {'succeeded': 3 + 4, 'failed': 2}
    assert remaining(app) == set(old_queued) | set(old_running) | set(retried)
    statuses = {row[0] for row in sql(app, 'SELECT status FROM jobs')}
    assert statuses == {'queued', 'running'}


def test_beats_prune_task_prunes_every_outcome_by_its_default_age(app, client):
    # What beat runs (worker.prune), with the default ages: 7 days for
    # succeeded and cancelled jobs, 30 for failed ones.
    from worker.prune import prune_expired
    ids = batch(client, 6)
    age(app, ids[0:1], 'succeeded', 8)
    age(app, ids[1:2], 'succeeded', 6)
    age(app, ids[2:3], 'cancelled', 8)
    age(app, ids[3:4], 'cancelled', 6)
    age(app, ids[4:5], 'failed', 31)
    age(app, ids[5:6], 'failed', 8)
    with app.app_context():
        assert prune_expired(app.config) == {'succeeded': 1, 'failed': 1, 'cancelled': 1}
    assert remaining(app) == {ids[1], ids[3], ids[5]}


def test_a_keyed_job_stays_while_its_key_is_honoured(app, client):
    keyed = client.post('/jobs/genre.create', json=GENRE,
                        headers={'Idempotency-Key': 'k-1'}).get_json()['id']
    # Finished long ago, but its key is honoured for 20 days (longer than the retention).
    age(app, [keyed], 'succeeded', 10)
    with app.app_context():
        session = app.extensions['pg'].pool.connection().session
        assert ledger.prune(session, {'succeeded': DAY}, key_window=20 * DAY) == {'succeeded': 0}
        assert ledger.prune(session, {'succeeded': DAY}, key_window=DAY) == {'succeeded': 1}


def test_a_key_is_replayed_inside_its_window_and_makes_a_new_job_after_it(make_app, broker):
    from pg import init_db
    app = make_app(FLASK_IDEMPOTENCY_WINDOW_SECONDS=3600)
    with app.app_context():
        init_db(app).cleandb()
    client = app.test_client()
    key = {'Idempotency-Key': 'order-7'}
    first = client.post('/jobs/genre.create', json=GENRE, headers=key).get_json()['id']
    assert client.post('/jobs/genre.create', json=GENRE, headers=key).get_json()['id'] == first
    sql(app, "UPDATE jobs SET created_at = now() - interval '59 minutes' WHERE id = :i", i=first)
    assert client.post('/jobs/genre.create', json=GENRE, headers=key).get_json()['id'] == first
    sql(app, "UPDATE jobs SET created_at = now() - interval '61 minutes' WHERE id = :i", i=first)
    # Past the window: a new job (another body is no conflict either), replayed in its turn.
    second = client.post('/jobs/genre.create', json={**GENRE, 'name': 'blues'},
                         headers=key).get_json()['id']
    assert second != first
    assert client.post('/jobs/genre.create', json={**GENRE, 'name': 'blues'},
                       headers=key).get_json()['id'] == second
    assert client.get(f'/jobs/{first}').status_code == 200  # the old job itself stays
    assert len(remaining(app)) == 2


def walk(client, query, limit):
    """Every page of a listing, following `next`; return the ids in order."""
    ids, cursor, pages = [], None, 0
    while True:
        url = f'/jobs?{query}&limit={limit}' + (f'&cursor={cursor}' if cursor else '')
        answer = client.get(url)
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        ids += [job['id'] for job in body['jobs']]
        pages += 1
        cursor = body['next']
        if cursor is None:
            return ids, pages


def test_pagination_walks_every_job_once_newest_first(app, client):
    genres = batch(client, 60)
    artists = batch(client, 40, 'artist.create', {'name': 'a', 'description': 'b', 'genre_id': 1})
    queued = set(genres[-5:])
    failed = set(genres[:-5:3]) | set(artists[::4])
    succeeded = (set(genres) | set(artists)) - failed - queued
    age(app, failed, 'failed', 1)
    age(app, succeeded, 'succeeded', 1)
    kinds = {**dict.fromkeys(genres, 'genre.create'), **dict.fromkeys(artists, 'artist.create')}
    for query, expected in [
            ('status=failed', failed),
            ('status=succeeded&kind=artist.create',
             {i for i in succeeded if kinds[i] == 'artist.create'}),
            ('kind=genre.create', set(genres)),
            ('status=queued', queued),
            ('status=queued&kind=genre.create', queued),
            ('kind=artist.create', set(artists)),
            ('status=running', set())]:
        ids, pages = walk(client, query, limit=7)
        assert ids == sorted(expected, reverse=True), query  # each once, newest first
        assert pages == max(1, -(-len(expected) // 7)), query
    everything, _ = walk(client, '', limit=13)  # no filter: every job
    assert everything == sorted(kinds, reverse=True)


@pytest.mark.parametrize('cursor', ['nope', 'djE6eA', 'djI6MTA', '%00', 'djE6LTE', 'x' * 300])
def test_a_cursor_no_listing_gave_is_a_400(client, cursor):
    answer = client.get(f'/jobs?cursor={cursor}')
    assert answer.status_code == 400
    assert answer.get_json()['code'] == 400 and 'cursor' in answer.get_json()['message']


def test_listings_of_finished_jobs_are_served_by_the_index(app, client):
    """Whatever the planner thinks of a small table: with sequential scans
    priced out, each listing of finished jobs still has an index path."""
    from ledger.reads import LISTINGS
    batch(client, 5)
    with app.extensions['pg'].pool.connection().engine.begin() as conn:
        conn.execute(text('SET LOCAL enable_seqscan = off'))
        for key in [(True, True, True), (True, False, True), (False, True)]:
            plan = '\n'.join(row[0] for row in conn.execute(
                text('EXPLAIN ' + LISTINGS[key]),
                {'status': 'failed', 'kind': 'genre.create', 'limit': 51, 'before': 2**62}))
            assert 'ix_jobs_finished' in plan and 'Seq Scan' not in plan, (key, plan)


def test_migration_0004_starts_the_tallies_from_the_jobs_there(new_database):
    from alembic import command
    from sqlalchemy import create_engine

    from ledger.counts import totals
    from tests.alembic_config import alembic_config
    url = new_database()
    command.upgrade(alembic_config(url), '0003')
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO jobs (kind, payload, status, attempts, finished_at, created_at, updated_at) "
            "VALUES ('genre.create', '{}', 'succeeded', 1, now(), now() - interval '0.2 s', now()), "
            "('genre.create', '{}', 'succeeded', 2, now(), now() - interval '3 s', now()), "
            "('genre.create', '{}', 'queued', 0, NULL, now(), now()), "
            "('user.credit', '{}', 'failed', 3, now(), now() - interval '0.01 s', now())"))
    command.upgrade(alembic_config(url), 'head')
    with engine.connect() as conn:
        counted = totals(conn)
    engine.dispose()
    assert counted[('genre.create', 'accepted')][0] == 3
    assert counted[('user.credit', 'accepted')][0] == 1
    assert counted[('genre.create', 'succeeded')][:2] == (2, pytest.approx(3.2))
    assert counted[('genre.create', 'succeeded')][2][BUCKET_OF_ONE_SECOND] == 1
    assert counted[('user.credit', 'failed')][0] == 1
    assert counted[('genre.create', 'retried')][0] == 1
    assert counted[('user.credit', 'retried')][0] == 2
