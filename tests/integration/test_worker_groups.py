"""The worker's handling of a message that carries many jobs, against the
real database: claimed at once (visible as running), applied in one
transaction, and one by one when one of them fails. The task is driven
directly; tests/e2e run the same code in real worker processes."""
import json
import threading
import time
from decimal import Decimal

import pytest
from sqlalchemy import text

from tests.integration.service import kill_client_backends, service_fixtures
from tests.integration.task_double import Task
from tests.settings import redis_url
from worker.execution import JobsFailed, run_job

BROKER_URL = redis_url(11)

broker, make_app, clean, app, client = service_fixtures(BROKER_URL)


def sql(app, statement, **params):
    engine = app.extensions['pg'].pool.connection().engine
    with engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return result.fetchall() if result.returns_rows else None


def make_users(app, *credits):
    return [sql(app, "INSERT INTO users (username, is_active, credit_score) "
                     "VALUES ('u', true, :c) RETURNING id", c=c)[0][0] for c in credits]


def queue(app, kind, payloads, attempts=0):
    from ledger import insert_jobs
    with app.app_context():
        ids = insert_jobs(app.extensions['pg'].pool.connection().session,
                          [(kind, p) for p in payloads])
        app.extensions['pg'].pool.commit()
    if attempts:
        sql(app, 'UPDATE jobs SET attempts = :a WHERE id = ANY(:ids)', a=attempts, ids=ids)
    return ids


def jobs(app, ids):
    return sql(app, 'SELECT status, attempts, result, error FROM jobs WHERE id = ANY(:ids) '
                    'ORDER BY id', ids=ids)


def credit(app, user_id):
    return sql(app, 'SELECT credit_score FROM users WHERE id = :i', i=user_id)[0][0]


def run(app, kind, ids):
    task = Task(kind)
    with app.app_context():
        return run_job(task, ids), task


def test_a_group_of_credits_is_applied_in_order_with_each_result(app):
    hot, other = make_users(app, 0, 100)
    payloads = [{'user_id': hot if i % 4 else other, 'amount': i} for i in range(1, 21)]
    ids = queue(app, 'user.credit', payloads)
    outcome, _ = run(app, 'user.credit', ids)
    assert outcome == {'succeeded': 20}
    rows = jobs(app, ids)
    assert [(status, attempts) for status, attempts, _, _ in rows] == [('succeeded', 1)] * 20
    balances = {hot: 0, other: 100}
    for payload, (_, _, result, _) in zip(payloads, rows):
        balances[payload['user_id']] += payload['amount']
        assert result == {'id': payload['user_id'], 'credit_score': balances[payload['user_id']]}
    assert credit(app, hot) == balances[hot] and credit(app, other) == balances[other]


def test_one_failing_job_fails_alone_and_the_others_are_applied_once(app):
    [user] = make_users(app, 0)
    ids = queue(app, 'user.credit', [{'user_id': user, 'amount': 5},
                                     {'user_id': user, 'amount': -10},  # would go below 0
                                     {'user_id': user, 'amount': 3},
                                     {'user_id': 999999, 'amount': 1}])  # no such user
    outcome, _ = run(app, 'user.credit', ids)
    assert outcome == {'succeeded': 2, 'failed': 2}  # what Flower shows as the result
    rows = jobs(app, ids)
    assert [status for status, *_ in rows] == ['succeeded', 'failed', 'succeeded', 'failed']
    assert [attempts for _, attempts, *_ in rows] == [1, 1, 1, 1]
    assert 'below 0' in rows[1][3] and 'does not exist' in rows[3][3]
    assert credit(app, user) == 8


def test_a_second_delivery_changes_nothing(app):
    [user] = make_users(app, 0)
    ids = queue(app, 'user.credit', [{'user_id': user, 'amount': 2}] * 3)
    assert run(app, 'user.credit', ids)[0] == {'succeeded': 3}
    assert run(app, 'user.credit', ids)[0] == {'duplicate': 3}
    assert credit(app, user) == 6
    assert [attempts for _, attempts, *_ in jobs(app, ids)] == [1, 1, 1]


def test_a_job_out_of_attempts_fails_and_the_rest_is_applied(app):
    [user] = make_users(app, 0)
    [spent] = queue(app, 'user.credit', [{'user_id': user, 'amount': 100}], attempts=5)
    fresh = queue(app, 'user.credit', [{'user_id': user, 'amount': 1}] * 2)
    assert run(app, 'user.credit', [spent, *fresh])[0] == {'succeeded': 2, 'failed': 1}
    rows = jobs(app, [spent, *fresh])
    assert rows[0][0] == 'failed' and 'worker lost' in rows[0][3]
    assert [status for status, *_ in rows[1:]] == ['succeeded', 'succeeded']
    assert credit(app, user) == 2


def test_a_message_whose_jobs_all_failed_raises_with_the_reasons_once_recorded(app):
    [user] = make_users(app, 0)
    ids = queue(app, 'user.credit', [{'user_id': 999999, 'amount': 1},
                                     {'user_id': user, 'amount': -5}])
    with pytest.raises(JobsFailed) as failed:
        run(app, 'user.credit', ids)
    assert str(failed.value).startswith('2 failed: ')
    assert 'does not exist' in str(failed.value) and 'below 0' in str(failed.value)
    assert [status for status, *_ in jobs(app, ids)] == ['failed', 'failed']  # committed
    # A second delivery finds them finished: nothing is run again, nothing raised.
    assert run(app, 'user.credit', ids)[0] == {'duplicate': 2}
    [single] = queue(app, 'user.credit', [{'user_id': 999999, 'amount': 1}])
    with pytest.raises(JobsFailed, match=f'1 failed: job {single}: .*does not exist'):
        run(app, 'user.credit', single)


def test_a_group_is_claimed_and_visible_as_running_before_it_is_applied(app):
    [user] = make_users(app, 0)
    ids = queue(app, 'user.credit', [{'user_id': user, 'amount': 1}] * 5)
    engine = app.extensions['pg'].pool.connection().engine
    outcome = []
    with engine.connect() as other_worker:
        # Another transaction holds the user's row: the group must wait for it.
        other_worker.execute(text('SELECT id FROM users WHERE id = :i FOR UPDATE'), {'i': user})
        runner = threading.Thread(target=lambda: outcome.append(run(app, 'user.credit', ids)[0]))
        runner.start()
        deadline = time.monotonic() + 10
        while [r[:2] for r in jobs(app, ids)] != [('running', 1)] * 5:
            assert time.monotonic() < deadline, 'the claim was not committed on its own'
            time.sleep(0.05)
        assert credit(app, user) == 0
        # Its rows are locked while its handlers run, so the sweep, however
        # old it finds them, passes over them.
        while not sql(app, "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                           "AND datname = current_database()"):
            assert time.monotonic() < deadline, 'the group did not wait for the user'
            time.sleep(0.05)
        with app.app_context():
            import ledger
            taken = ledger.take_stale(app.extensions['pg'].pool.connection().session,
                                      queued_age=0, running_age=0, lost_age=0, limit=100)
        assert taken == {}
        other_worker.rollback()
    runner.join(10)
    assert outcome == [{'succeeded': 5}]
    assert credit(app, user) == Decimal(5)


@pytest.mark.parametrize('kind, payload', [
    ('genre.create', {'name': 'jazz', 'description': 'swing'}),
])
def test_a_group_of_inserts_is_one_transaction(app, kind, payload):
    ids = queue(app, kind, [payload] * 50)
    assert run(app, kind, ids)[0] == {'succeeded': 50}
    rows = jobs(app, ids)
    assert {status for status, *_ in rows} == {'succeeded'}
    created = [result['id'] for _, _, result, _ in rows]
    assert len(set(created)) == 50
    # One transaction: every row of the group carries the same transaction id.
    assert sql(app, 'SELECT count(DISTINCT xmin::text) FROM genre WHERE id = ANY(:ids)',
               ids=created)[0][0] == 1


def test_a_large_group_is_found_by_the_primary_key_in_a_large_ledger(app):
    # With `id = ANY(...)` alone, the planner read a few hundred ids off a
    # ledger of tens of thousands of rows by a scan of the whole table, once
    # to claim them and once to lock them (10 ms a message at 30,000 rows,
    # growing with the ledger); the ids' range makes the key the way in.
    from ledger import run as statements
    from ledger.model import Status, in_ids
    queue(app, 'genre.create', [{'name': 'jazz', 'description': 'swing'}] * 30_000)
    ids = queue(app, 'genre.create', [{'name': 'jazz', 'description': 'swing'}] * 500)
    sql(app, 'ANALYZE jobs')
    params = {**in_ids(ids), 'running': Status.RUNNING, 'owner': 1,
              'succeeded': Status.SUCCEEDED, 'failed': Status.FAILED,
              'cancelled': Status.CANCELLED, 'scheduled': Status.SCHEDULED}
    for statement in (statements.CLAIM, statements.LOCK):
        plan = '\n'.join(row[0] for row in sql(app, 'EXPLAIN ' + statement.text, **params))
        assert 'Seq Scan on jobs' not in plan and 'jobs_pkey' in plan, plan


@pytest.mark.parametrize('size', [10, 500])
def test_a_groups_completion_is_found_by_the_primary_key_in_a_ledger_of_thousands(app, size):
    # Joined to its results, the completion of a group of 10 read a ledger
    # of 16,000 rows whole (a hash join on a scan of the table: 3.5 ms of
    # PostgreSQL's CPU for 10 jobs, most of the worker's database time in the
    # single scenario); found by the ids' range, each result looked up by id,
    # the key is the way in.
    from ledger import run as statements
    from ledger.model import Status, in_ids
    queue(app, 'genre.create', [{'name': 'jazz', 'description': 'swing'}] * 16_000)
    ids = queue(app, 'genre.create', [{'name': 'jazz', 'description': 'swing'}] * size)
    sql(app, 'ANALYZE jobs')
    params = {**in_ids(ids), 'succeeded': Status.SUCCEEDED,
              'done': json.dumps({job_id: {'id': job_id} for job_id in ids})}
    plan = '\n'.join(row[0] for row in sql(app, 'EXPLAIN ' + statements.COMPLETE.text, **params))
    assert 'Seq Scan on jobs' not in plan and 'jobs_pkey' in plan, plan


def test_a_claim_that_finds_its_connection_dead_is_sent_on_a_new_one(app):
    # A claim is one statement on a connection of its own, with no ping on
    # checkout: one found dead (a database restart, an idle timeout) is
    # replaced and the claim sent again, with no retry of the message (the
    # task double fails the test on one) and each attempt counted once.
    genres = [{'name': 'jazz', 'description': 'swing'}] * 2
    assert run(app, 'genre.create', queue(app, 'genre.create', genres))[0] == {'succeeded': 2}
    kill_client_backends()
    ids = queue(app, 'genre.create', genres)
    assert run(app, 'genre.create', ids)[0] == {'succeeded': 2}
    assert [(status, attempts) for status, attempts, *_ in jobs(app, ids)] == [('succeeded', 1)] * 2


def test_a_group_leaves_out_a_job_finished_after_its_claim(app):
    # The payloads come with the claim; the group then locks its rows and
    # applies only the jobs still running: one a duplicate delivery finished
    # meanwhile gets no second effect.
    from ledger import claim
    from worker.batch import run_batch
    ids = queue(app, 'genre.create', [{'name': 'jazz', 'description': 'swing'}] * 3)
    with app.app_context():
        session = app.extensions['pg'].pool.connection().session
        claimed = claim(session, ids)
        sql(app, "UPDATE jobs SET status = 'succeeded' WHERE id = :i", i=ids[-1])
        assert run_batch(session, claimed) == 2
    assert sql(app, 'SELECT count(*) FROM genre')[0][0] == 2
    assert {row[0] for row in jobs(app, ids)} == {'succeeded'}


def test_a_group_applied_again_job_by_job_gives_each_handler_its_payload_afresh(app):
    # genre.update's handler takes the id out of the dict it is given: after
    # the group failed (its second job), the first job's handler, run alone,
    # was given the same dict again, without its id, and failed.
    [(genre,)] = sql(app, "INSERT INTO genre (name, description) VALUES ('g', 'd') RETURNING id")
    ids = queue(app, 'genre.update', [{'id': genre, 'description': 'new'},
                                      {'id': 2**31 - 1, 'name': 'nothing'},
                                      {'id': genre, 'name': 'again'}])
    assert run(app, 'genre.update', ids)[0] == {'succeeded': 2, 'failed': 1}
    assert [row[0] for row in jobs(app, ids)] == ['succeeded', 'failed', 'succeeded']
    assert sql(app, 'SELECT name, description FROM genre WHERE id = :i', i=genre) == [
        ('again', 'new')]


def test_two_deliveries_of_a_group_apply_it_once(app):
    # Both claim the group (the second claim counts a second attempt), then
    # apply it at once, each in its own app context (its own session): the
    # later one waits for the earlier's row locks, then finds the jobs
    # succeeded and applies none.
    from ledger import claim
    from worker.batch import run_batch
    ids = queue(app, 'genre.create', [{'name': 'jazz', 'description': 'swing'}] * 4)
    claimed, applied = threading.Barrier(2), []

    def deliver():
        with app.app_context():
            session = app.extensions['pg'].pool.connection().session
            group = claim(session, ids)
            claimed.wait()
            applied.append(run_batch(session, group))
    deliveries = [threading.Thread(target=deliver) for _ in range(2)]
    for delivery in deliveries:
        delivery.start()
    for delivery in deliveries:
        delivery.join(10)
    assert sorted(applied) == [0, 4]
    assert sql(app, 'SELECT count(*) FROM genre')[0][0] == 4
    assert {row[0] for row in jobs(app, ids)} == {'succeeded'}


def test_the_claim_sets_its_own_commit_not_to_wait_for_the_disk(app):
    from ledger import run as statements
    from ledger.model import Status, in_ids
    ids = queue(app, 'genre.create', [{'name': 'jazz', 'description': 'swing'}] * 3)
    engine = app.extensions['pg'].pool.connection().engine
    with engine.connect() as conn:
        assert conn.execute(text('SHOW synchronous_commit')).scalar() == 'on'
        claimed = conn.execute(statements.CLAIM, {
            **in_ids(ids), 'running': Status.RUNNING, 'owner': 1, 'succeeded': Status.SUCCEEDED,
            'failed': Status.FAILED, 'cancelled': Status.CANCELLED,
            'scheduled': Status.SCHEDULED}).all()
        assert sorted(row[0] for row in claimed) == ids
        assert conn.execute(text('SHOW synchronous_commit')).scalar() == 'off'  # this transaction's
        conn.rollback()
        assert conn.execute(text('SHOW synchronous_commit')).scalar() == 'on'
