"""Idempotency-Key: the same request again gets the original job back."""
import pytest

from tests.integration.jobs import GENRE, stored_jobs
from tests.integration.service import service_fixtures
from tests.settings import redis_url

BROKER_URL = redis_url(11)

broker, make_app, clean, app, client = service_fixtures(BROKER_URL)

KEY = {'Idempotency-Key': 'order-42'}


def queued_messages(broker):
    return broker.llen('jobs')


def test_same_key_same_body_returns_the_original_job(client, app, broker):
    before = queued_messages(broker)
    first = client.post('/jobs/genre.create', json=GENRE, headers=KEY)
    again = client.post('/jobs/genre.create', json=dict(reversed(list(GENRE.items()))),
                        headers=KEY)
    assert first.status_code == again.status_code == 202
    assert again.json['id'] == first.json['id']
    assert again.headers['Location'] == first.headers['Location']
    assert len(stored_jobs(app)) == 1
    assert queued_messages(broker) == before + 1


def test_same_key_other_body_is_422(client, app):
    assert client.post('/jobs/genre.create', json=GENRE, headers=KEY).status_code == 202
    other = client.post('/jobs/genre.create', json={**GENRE, 'name': 'blues'}, headers=KEY)
    assert other.status_code == 422 and other.json['code'] == 422
    assert 'Idempotency-Key' in other.json['message']
    other_kind = client.post('/jobs/genre.update', json={'id': 1, 'name': 'x'}, headers=KEY)
    assert other_kind.status_code == 422
    assert len(stored_jobs(app)) == 1


def test_without_a_key_each_post_is_a_new_job(client, app):
    ids = {client.post('/jobs/genre.create', json=GENRE).json['id'] for _ in range(3)}
    assert len(ids) == 3


@pytest.mark.parametrize('key', ['', 'x' * 256, 'tab\there', 'caf\u00e9'])
def test_an_invalid_key_is_400(client, app, key):
    response = client.post('/jobs/genre.create', json=GENRE, headers={'Idempotency-Key': key})
    assert response.status_code == 400 and response.json['code'] == 400
    assert stored_jobs(app) == []


def test_a_key_of_255_characters_is_accepted(client):
    key = {'Idempotency-Key': 'k' * 255}
    first = client.post('/jobs/genre.create', json=GENRE, headers=key)
    assert client.post('/jobs/genre.create', json=GENRE, headers=key).json['id'] == first.json['id']


def test_keys_are_scoped_per_api_token(make_app, clean):
    app = make_app(FLASK_API_TOKENS='alpha,beta')
    client = app.test_client()
    ids = {}
    for token in ('alpha', 'beta', 'alpha'):
        headers = {**KEY, 'Authorization': f'Bearer {token}'}
        response = client.post('/jobs/genre.create', json=GENRE, headers=headers)
        assert response.status_code == 202
        ids.setdefault(token, set()).add(response.json['id'])
    assert len(ids['alpha']) == 1 and len(ids['beta']) == 1 and ids['alpha'] != ids['beta']
    assert len(stored_jobs(app)) == 2


def test_a_batch_replayed_with_its_key_returns_the_same_ids(client, app, broker):
    batch = [GENRE, {**GENRE, 'name': 'soul'}]
    before = queued_messages(broker)
    first = client.post('/jobs/genre.create/batch', json=batch, headers=KEY)
    again = client.post('/jobs/genre.create/batch', json=batch, headers=KEY)
    assert first.status_code == again.status_code == 202
    assert again.json['ids'] == first.json['ids']
    assert queued_messages(broker) == before + 1  # one message for the group
    changed = client.post('/jobs/genre.create/batch', json=[GENRE, GENRE], headers=KEY)
    longer = client.post('/jobs/genre.create/batch', json=[*batch, GENRE], headers=KEY)
    assert changed.status_code == longer.status_code == 422
    assert len(stored_jobs(app)) == 2


def test_a_replay_answers_with_the_current_status(client, app):
    from ledger import Job
    first = client.post('/jobs/genre.create', json=GENRE, headers=KEY)
    with app.app_context():
        Job.objects.raw_sql("UPDATE jobs SET status = 'succeeded' WHERE id = :i", i=first.json['id'])
        app.extensions['pg'].pool.commit()
    assert client.post('/jobs/genre.create', json=GENRE, headers=KEY).json['status'] == 'succeeded'


def test_a_key_is_free_again_when_the_broker_refused_the_job(make_app, clean):
    down = make_app(CELERY_BROKER_URL='redis://127.0.0.1:1/0').test_client()
    assert down.post('/jobs/genre.create', json=GENRE, headers=KEY).status_code == 503
    up = make_app().test_client()
    response = up.post('/jobs/genre.create', json=GENRE, headers=KEY)
    assert response.status_code == 202
    assert [j['id'] for j in stored_jobs(clean)] == [response.json['id']]


def test_retry_revalidates_the_stored_payload(client, app, broker):
    from ledger import Job
    ids = [client.post('/jobs/genre.create', json=GENRE).json['id'] for _ in range(2)]
    with app.app_context():
        Job.objects.raw_sql("UPDATE jobs SET status = 'failed', error = 'boom' WHERE id = ANY(:i)",
                            i=ids)
        Job.objects.raw_sql("UPDATE jobs SET payload = CAST(:p AS jsonb) WHERE id = :i",
                            p='{"name": "x", "colour": "red"}', i=ids[1])
        app.extensions['pg'].pool.commit()
    before = broker.llen('jobs')
    ok = client.post(f'/jobs/{ids[0]}/retry')
    assert ok.status_code == 202 and ok.json['status'] == 'queued'
    assert client.get(f'/jobs/{ids[0]}').json['error'] is None
    stale = client.post(f'/jobs/{ids[1]}/retry')
    assert stale.status_code == 422 and stale.json['code'] == 422
    assert {e['path'] for e in stale.json['errors']} == {'/colour', '/description'}
    assert broker.llen('jobs') == before + 1


def test_the_request_digest_is_keyed_by_the_secret(make_app):
    """The ledger's request_digest of a user.create body (which holds the clear
    password) is an HMAC under FLASK_SECRET_KEY, not a hash anyone can recompute."""
    import hashlib
    import json
    from web.idempotency import digest
    body = {'username': 'ann', 'email': 'ann@example.com', 'password': 'correct horse'}
    canonical = json.dumps(['user.create', body], sort_keys=True, separators=(',', ':'))
    digests = []
    for secret in ('a' * 32, 'b' * 32):
        app = make_app(FLASK_SECRET_KEY=secret)
        with app.app_context():
            digests.append(digest('user.create', body))
    assert digests[0] != digests[1]
    assert hashlib.sha256(canonical.encode()).hexdigest() not in digests
