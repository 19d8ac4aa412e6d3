"""HTTP in, rows out: the pipeline through real web and worker processes, on
the session's broker and again on RabbitMQ (tests/e2e/brokers.py)."""
import os
import threading
import time
from collections import Counter
from decimal import Decimal

from sqlalchemy import text

from service.queue import publish
from tests.e2e.brokers import ON_EACH_BROKER

pytestmark = ON_EACH_BROKER


def make_user(svc, credit=0):
    job = svc.run('user.create', {'username': 'u', 'email': 'u@example.com',
                                  'password': 'long enough'})
    assert job['status'] == 'succeeded', job
    user_id = job['result']['id']
    if credit:
        assert svc.run('user.credit', {'user_id': user_id, 'amount': credit})['status'] == 'succeeded'
    return user_id


def credit_of(svc, user_id):
    return svc.sql('SELECT credit_score FROM users WHERE id = :i', i=user_id)[0][0]


def test_each_kind_applies_its_effect(clean):
    svc = clean
    response = svc.post('genre.create', {'name': 'Rock', 'description': 'loud'})
    assert response.status_code == 202
    body = response.json()
    assert body['status'] == 'queued' and body['kind'] == 'genre.create'
    assert response.headers['Location'] == body['status_url'] == f'/jobs/{body["id"]}'
    genre = svc.wait_jobs([body['id']])[body['id']]
    assert genre['status'] == 'succeeded' and genre['attempts'] == 1
    genre_id = genre['result']['id']

    assert svc.run('genre.update', {'id': genre_id, 'description': 'louder'})['status'] == 'succeeded'
    artist_id = svc.run('artist.create', {'name': 'Pink Floyd', 'description': 'x',
                                          'genre_id': genre_id})['result']['id']
    album_id = svc.run('album.create', {'name': 'Animals', 'description': 'y',
                                        'artist_id': artist_id})['result']['id']
    user_id = make_user(svc)
    credited = svc.run('user.credit', {'user_id': user_id, 'amount': 12.5})

    assert svc.sql('SELECT name, description FROM genre WHERE id = :i', i=genre_id) == [
        ('Rock', 'louder')]
    assert svc.sql('SELECT genre_id FROM artist WHERE id = :i', i=artist_id) == [(genre_id,)]
    assert svc.sql('SELECT artist_id FROM album WHERE id = :i', i=album_id) == [(artist_id,)]
    assert credited['result'] == {'id': user_id, 'credit_score': 12.5}
    assert credit_of(svc, user_id) == Decimal('12.5')
    stored = svc.sql('SELECT password FROM users WHERE id = :i', i=user_id)[0][0]
    assert stored.startswith('$2b$') and 'long enough' not in stored
    job = svc.job(genre['id'])
    assert set(job) == {'id', 'kind', 'status', 'attempts', 'result', 'error',
                        'created_at', 'updated_at', 'request_id', 'run_at'}


def test_permanent_failures_fail_at_once_with_the_reason(clean):
    svc = clean
    missing_fk = svc.run('artist.create', {'name': 'a', 'description': 'b', 'genre_id': 424242})
    assert missing_fk['status'] == 'failed' and missing_fk['attempts'] == 1
    assert 'foreign key' in missing_fk['error']
    unknown_user = svc.run('user.credit', {'user_id': 424242, 'amount': 1})
    assert unknown_user['status'] == 'failed' and 'does not exist' in unknown_user['error']
    user_id = make_user(svc, credit=5)
    overdraft = svc.run('user.credit', {'user_id': user_id, 'amount': -5.01})
    assert overdraft['status'] == 'failed' and overdraft['attempts'] == 1
    assert 'below 0' in overdraft['error']
    assert credit_of(svc, user_id) == 5
    missing_genre = svc.run('genre.update', {'id': 424242, 'name': 'x'})
    assert missing_genre['status'] == 'failed'
    assert svc.sql('SELECT count(*) FROM artist')[0][0] == 0


def _hold_user_lock(svc, user_id, seconds):
    """Lock the user's row from another connection for `seconds`."""
    engine = svc.db.pool.connection().engine
    locked = threading.Event()

    def hold():
        with engine.connect() as conn:
            conn.execute(text('SELECT id FROM users WHERE id = :i FOR UPDATE'), {'i': user_id})
            locked.set()
            time.sleep(seconds)
            conn.rollback()

    thread = threading.Thread(target=hold)
    thread.start()
    locked.wait(5)
    return thread


def test_a_lock_timeout_is_retried_until_the_lock_is_free(clean):
    svc = clean
    user_id = make_user(svc)
    holder = _hold_user_lock(svc, user_id, 1.0)
    job = svc.run('user.credit', {'user_id': user_id, 'amount': 3})
    holder.join()
    assert job['status'] == 'succeeded', job
    assert job['attempts'] >= 2
    assert credit_of(svc, user_id) == 3


def test_transient_failures_give_up_after_the_last_attempt(clean):
    svc = clean
    user_id = make_user(svc)
    holder = _hold_user_lock(svc, user_id, 8)
    job = svc.run('user.credit', {'user_id': user_id, 'amount': 3})
    holder.join()
    assert job['status'] == 'failed'
    assert job['attempts'] == int(svc.env['WORKER_MAX_ATTEMPTS'])
    assert 'gave up' in job['error'] and 'lock' in job['error']
    assert credit_of(svc, user_id) == 0


def test_two_hundred_mixed_jobs_all_land(clean):
    svc = clean
    genre_ids = [svc.run('genre.create', {'name': f'g{i}', 'description': 'd'})['result']['id']
                 for i in range(3)]
    artist_id = svc.run('artist.create', {'name': 'a', 'description': 'd',
                                          'genre_id': genre_ids[0]})['result']['id']
    users = [make_user(svc) for _ in range(2)]
    requests_ = []
    for i in range(200):
        pick = i % 8
        if pick in (0, 1):
            requests_.append(('genre.create', {'name': f'n{i}', 'description': 'mixed'}))
        elif pick == 2:
            requests_.append(('genre.update', {'id': genre_ids[i % 3], 'name': f'renamed{i}'}))
        elif pick == 3:
            requests_.append(('artist.create', {'name': f'a{i}', 'description': 'mixed',
                                                'genre_id': genre_ids[i % 3]}))
        elif pick == 4:
            requests_.append(('album.create', {'name': f'al{i}', 'description': 'mixed',
                                               'artist_id': artist_id}))
        elif pick == 5 and i % 16 == 5:
            requests_.append(('user.create', {'username': f'u{i}', 'email': f'u{i}@example.com',
                                              'password': 'long enough'}))
        else:
            requests_.append(('user.credit', {'user_id': users[i % 2], 'amount': i}))
    responses = svc.post_many(requests_)
    assert [r.status_code for r in responses] == [202] * 200
    jobs = svc.wait_jobs([r.json()['id'] for r in responses], timeout=120)
    assert Counter(j['status'] for j in jobs.values()) == {'succeeded': 200}
    kinds = Counter(kind for kind, _ in requests_)
    assert svc.sql("SELECT count(*) FROM genre WHERE description = 'mixed'")[0][0] == kinds['genre.create']
    assert svc.sql("SELECT count(*) FROM artist WHERE description = 'mixed'")[0][0] == kinds['artist.create']
    assert svc.sql("SELECT count(*) FROM album WHERE description = 'mixed'")[0][0] == kinds['album.create']
    assert svc.sql('SELECT count(*) FROM users')[0][0] == 2 + kinds['user.create']
    for n, user_id in enumerate(users):
        expected = sum(p['amount'] for k, p in requests_
                       if k == 'user.credit' and p['user_id'] == user_id)
        assert credit_of(svc, user_id) == expected
    assert svc.sql('SELECT count(*) FROM jobs WHERE attempts <> 1')[0][0] == 0


def test_twenty_concurrent_credits_end_at_the_exact_sum(clean):
    svc = clean
    user_id = make_user(svc)
    amounts = [Decimal(i) / 4 for i in range(1, 21)]
    responses = svc.post_many([('user.credit', {'user_id': user_id, 'amount': float(a)})
                               for a in amounts], threads=20)
    jobs = svc.wait_jobs([r.json()['id'] for r in responses])
    assert all(j['status'] == 'succeeded' for j in jobs.values())
    assert credit_of(svc, user_id) == sum(amounts)


def test_concurrent_debits_never_go_below_zero(clean):
    svc = clean
    user_id = make_user(svc, credit=100)
    responses = svc.post_many([('user.credit', {'user_id': user_id, 'amount': -10})] * 30,
                              threads=15)
    jobs = svc.wait_jobs([r.json()['id'] for r in responses])
    statuses = Counter(j['status'] for j in jobs.values())
    assert statuses == {'succeeded': 10, 'failed': 20}
    assert all('below 0' in j['error'] for j in jobs.values() if j['status'] == 'failed')
    assert credit_of(svc, user_id) == 0


def test_a_message_delivered_twice_is_applied_once(clean):
    svc = clean
    job = svc.run('genre.create', {'name': 'once', 'description': 'd'})
    publish(svc.celery, [job['id']] * 3, 'genre.create')
    time.sleep(1.5)
    assert svc.sql("SELECT count(*) FROM genre WHERE name = 'once'")[0][0] == 1
    assert svc.job(job['id'])['attempts'] == 1


def test_beat_sweeps_up_a_job_whose_message_was_lost(clean):
    svc = clean
    # Recorded as the web does, but never published: as if Redis lost the message.
    [(job_id,)] = svc.sql(
        "INSERT INTO jobs (kind, payload, status, attempts) VALUES "
        "('genre.create', CAST(:p AS jsonb), 'queued', 0) RETURNING id",
        p='{"name": "swept", "description": "d"}')
    beat = svc.start('beat', WORKER_SWEEP_EVERY_SECONDS='1',
                     BEAT_SCHEDULE_FILE=os.path.join(svc.log_dir, 'beat-schedule'))
    try:
        job = svc.wait_jobs([job_id], timeout=30)[job_id]
    finally:
        svc.stop('beat')
    assert job['status'] == 'succeeded', beat.log()
    assert svc.sql("SELECT count(*) FROM genre WHERE name = 'swept'")[0][0] == 1


def test_dead_letters_are_listed_and_a_retry_is_applied_once(clean):
    svc = clean
    user_id = make_user(svc, credit=5)
    debit = svc.run('user.credit', {'user_id': user_id, 'amount': -8})
    assert debit['status'] == 'failed'
    failed = svc.http.get(f'{svc.url}/jobs?status=failed').json()['jobs']
    assert [(j['id'], j['error']) for j in failed] == [(debit['id'], debit['error'])]
    assert 'below 0' in failed[0]['error']

    svc.run('user.credit', {'user_id': user_id, 'amount': 10})
    retried = svc.http.post(f'{svc.url}/jobs/{debit["id"]}/retry')
    assert retried.status_code == 202 and retried.json()['id'] == debit['id']
    job = svc.wait_jobs([debit['id']])[debit['id']]
    assert job['status'] == 'succeeded' and job['error'] is None and job['attempts'] == 1
    again = svc.http.post(f'{svc.url}/jobs/{debit["id"]}/retry')
    assert again.status_code == 409
    time.sleep(0.5)
    assert credit_of(svc, user_id) == 7
    assert svc.http.get(f'{svc.url}/jobs?status=failed').json()['jobs'] == []


def test_fifty_concurrent_posts_with_one_key_make_one_job(clean):
    svc = clean
    from concurrent.futures import ThreadPoolExecutor
    barrier = threading.Barrier(50)

    def post(_):
        barrier.wait()
        return svc.post('genre.create', {'name': 'keyed', 'description': 'd'},
                        headers={'Idempotency-Key': 'same-key'})

    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(post, range(50)))
    assert {r.status_code for r in responses} == {202}
    ids = {r.json()['id'] for r in responses}
    assert len(ids) == 1
    svc.wait_jobs(ids)
    time.sleep(0.5)
    assert svc.sql("SELECT count(*) FROM jobs WHERE idempotency_key = 'same-key'")[0][0] == 1
    assert svc.sql("SELECT count(*) FROM genre WHERE name = 'keyed'")[0][0] == 1


def test_a_batch_is_applied_together_and_exactly_once(clean):
    svc = clean
    response = svc.http.post(f'{svc.url}/jobs/genre.create/batch', timeout=30,
                             json=[{'name': f'b{i}', 'description': 'batch'} for i in range(250)])
    assert response.status_code == 202
    ids = response.json()['ids']
    jobs = svc.wait_jobs(ids)
    assert {j['status'] for j in jobs.values()} == {'succeeded'}
    assert all(j['attempts'] == 1 and j['result']['id'] for j in jobs.values())
    publish(svc.celery, ids, 'genre.create', per_message=100)  # delivered again
    time.sleep(1.5)
    names = [n for (n,) in svc.sql("SELECT name FROM genre WHERE description = 'batch'")]
    assert sorted(names) == sorted(f'b{i}' for i in range(250))


def test_a_batch_with_a_bad_job_falls_back_to_one_by_one(clean):
    svc = clean
    genre_id = svc.run('genre.create', {'name': 'g', 'description': 'd'})['result']['id']
    artists = [{'name': f'a{i}', 'description': 'fallback', 'genre_id': genre_id}
               for i in range(10)]
    artists[6]['genre_id'] = 424242  # a missing foreign key
    response = svc.http.post(f'{svc.url}/jobs/artist.create/batch', json=artists, timeout=30)
    ids = response.json()['ids']
    jobs = svc.wait_jobs(ids)
    assert [jobs[i]['status'] for i in ids] == ['succeeded'] * 6 + ['failed'] + ['succeeded'] * 3
    assert 'foreign key' in jobs[ids[6]]['error']
    names = sorted(n for (n,) in svc.sql("SELECT name FROM artist WHERE description = 'fallback'"))
    assert names == sorted(a['name'] for i, a in enumerate(artists) if i != 6)
