"""Request ids, the worker's log lines about a job, and GET /metrics, in-process
(Flask's test client, the worker's run_job driven directly) against the real
test database and Redis (db 9 as the broker, TEST_OBS_BROKER_URL); no worker
runs, so the messages the web publishes stay in the queue."""
import io
import json
import logging
import os
import re
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from tests.conftest import DATABASE_URL, redis_url
from tests.integration.service import service_fixtures
from tests.integration.test_worker_groups import Task
from worker.execution import JobsFailed, run_job

BROKER_URL = os.environ.get('TEST_OBS_BROKER_URL') or redis_url(9)
HEADER = 'X-Request-ID'
GENRE = {'name': 'jazz', 'description': 'swing'}
DB_PASSWORD = re.search(r'//[^:/]+:([^@]+)@', DATABASE_URL).group(1)


broker, make_app, clean, app, client = service_fixtures(BROKER_URL)


def sql(app, statement, **params):
    with app.extensions['pg'].pool.connection().engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return result.fetchall() if result.returns_rows else None


# --- X-Request-ID --------------------------------------------------------------

def test_a_given_request_id_is_echoed_on_every_answer(client):
    accepted = client.post('/jobs/genre.create', json=GENRE, headers={HEADER: 'abc-123'})
    assert accepted.status_code == 202 and accepted.headers[HEADER] == 'abc-123'
    invalid = client.post('/jobs/genre.create', json={'name': 1}, headers={HEADER: 'bad-1'})
    assert invalid.status_code == 400 and invalid.headers[HEADER] == 'bad-1'
    for url in ('/jobs/no.such.kind', '/no/such/route', '/jobs/999999'):
        method = client.post if url.startswith('/jobs/no.') else client.get
        answer = method(url, json=GENRE, headers={HEADER: 'nf 1'})
        assert answer.status_code == 404 and answer.headers[HEADER] == 'nf 1', url
    longest = 'x' * 128
    assert client.get('/kinds', headers={HEADER: longest}).headers[HEADER] == longest


def test_without_a_valid_request_id_a_new_one_is_made(client):
    made = [client.get('/kinds').headers[HEADER],
            client.get('/jobs/999999').headers[HEADER],
            client.post('/jobs/genre.create', data='x', content_type='text/plain').headers[HEADER]]
    for invalid in ('x' * 129, 'caf\u00e9', 'tab\there'):
        made.append(client.get('/kinds', headers={HEADER: invalid}).headers[HEADER])
    assert all(re.fullmatch('[0-9a-f]{32}', value) for value in made), made
    assert len(set(made)) == len(made)


def test_a_refused_token_still_gets_its_request_id(make_app):
    client = make_app(FLASK_API_TOKENS='a-token-of-sixteen-chars').test_client()
    refused = client.get('/jobs', headers={HEADER: 'who-1'})
    assert refused.status_code == 401 and refused.headers[HEADER] == 'who-1'
    assert client.get('/metrics').status_code == 200  # open, as /health


def test_a_5xx_is_logged_with_its_request_id(make_app):
    from service import logs
    stream = io.StringIO()
    web_log = logging.getLogger('web')
    handler = logs.handler('json', stream)
    web_log.addHandler(handler)
    try:
        client = make_app(SQLALCHEMY_DEFAULT='postgresql://ds:not-the-pw@127.0.0.1:1/ds').test_client()
        down = client.get('/jobs/1', headers={HEADER: 'down-1'})
    finally:
        web_log.removeHandler(handler)
    assert down.status_code == 503 and down.headers[HEADER] == 'down-1'
    [record] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert record['level'] == 'WARNING' and record['request_id'] == 'down-1'
    assert record['message'] == 'database unavailable: ConnectionLostError'
    assert 'not-the-pw' not in stream.getvalue()


def test_the_request_id_is_recorded_with_the_job(app, client):
    single = client.post('/jobs/genre.create', json=GENRE, headers={HEADER: 'single-1'})
    keyed = client.post('/jobs/genre.create', json=GENRE,
                        headers={HEADER: 'keyed-1', 'Idempotency-Key': 'k1'})
    batch = client.post('/jobs/genre.create/batch', json=[GENRE, GENRE],
                        headers={HEADER: 'batch-1'})
    generated = client.post('/jobs/genre.create', json=GENRE)
    ids = {'single-1': single.get_json()['id'], 'keyed-1': keyed.get_json()['id'],
           generated.headers[HEADER]: generated.get_json()['id']}
    for request_id, job_id in ids.items():
        assert client.get(f'/jobs/{job_id}').get_json()['request_id'] == request_id
    rows = sql(app, 'SELECT id, request_id FROM jobs WHERE id = ANY(:ids)',
               ids=batch.get_json()['ids'])
    assert [r[1] for r in rows] == ['batch-1', 'batch-1']
    # A replay of the keyed request answers the original job, which keeps its id.
    replay = client.post('/jobs/genre.create', json=GENRE,
                         headers={HEADER: 'keyed-2', 'Idempotency-Key': 'k1'})
    assert replay.get_json()['id'] == ids['keyed-1'] and replay.headers[HEADER] == 'keyed-2'
    assert client.get(f'/jobs/{ids["keyed-1"]}').get_json()['request_id'] == 'keyed-1'


def test_the_worker_logs_a_failed_job_with_its_request_id(app, client):
    request_id = f'credit-{uuid.uuid4().hex[:8]}'
    missing_user = client.post('/jobs/user.credit', json={'user_id': 2**31 - 1, 'amount': 5},
                               headers={HEADER: request_id})
    job_id = missing_user.get_json()['id']
    stream = io.StringIO()
    worker_log = logging.getLogger('worker')
    from service import logs
    handler = logs.handler('json', stream)
    worker_log.addHandler(handler)
    level = worker_log.level
    worker_log.setLevel(logging.INFO)
    try:
        with app.app_context(), pytest.raises(JobsFailed):
            run_job(Task('user.credit'), job_id)
    finally:
        worker_log.removeHandler(handler)
        worker_log.setLevel(level)
    assert sql(app, 'SELECT status FROM jobs WHERE id = :i', i=job_id) == [('failed',)]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    aborted = [r for r in lines if 'aborted' in r['message']]
    failed = [r for r in lines if r['message'].startswith(f'job {job_id} failed')]
    assert aborted and aborted[0]['request_ids'] == [request_id]
    assert failed and failed[0]['request_id'] == request_id and failed[0]['level'] == 'WARNING'
    assert failed[0]['job_id'] == job_id


# --- /metrics ----------------------------------------------------------------

def scrape(client):
    answer = client.get('/metrics')
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.content_type.startswith('text/plain')
    body = answer.get_data(as_text=True)
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return body, samples


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_count_the_ledger_and_the_queue(app, client):
    for _ in range(3):
        assert client.post('/jobs/genre.create', json=GENRE).status_code == 202
    credits = client.post('/jobs/user.credit/batch', json=[{'user_id': 1, 'amount': 1}] * 4)
    assert credits.status_code == 202
    # What workers would have done: two credits applied (one at its third
    # attempt), one failed, one running; the genres stay queued.
    succeeded, also, failed, running = credits.get_json()['ids']
    sql(app, "UPDATE jobs SET status = 'succeeded', attempts = 1, "
             "finished_at = created_at + interval '0.2 seconds' WHERE id = :i", i=succeeded)
    sql(app, "UPDATE jobs SET status = 'succeeded', attempts = 3, "
             "finished_at = created_at + interval '4 seconds' WHERE id = :i", i=also)
    sql(app, "UPDATE jobs SET status = 'failed', attempts = 1, "
             "finished_at = created_at + interval '0.02 seconds' WHERE id = :i", i=failed)
    sql(app, "UPDATE jobs SET status = 'running', attempts = 1 WHERE id = :i", i=running)
    sql(app, "UPDATE jobs SET created_at = now() - interval '90 seconds' "
             "WHERE kind = 'genre.create' AND id = (SELECT min(id) FROM jobs)")

    body, samples = scrape(client)
    assert value(samples, 'jobs_accepted_total', kind='genre.create') == 3
    assert value(samples, 'jobs_accepted_total', kind='user.credit') == 4
    assert value(samples, 'jobs_accepted_total', kind='album.create') == 0  # every kind shown
    assert value(samples, 'jobs_succeeded_total', kind='user.credit') == 2
    assert value(samples, 'jobs_failed_total', kind='user.credit') == 1
    assert value(samples, 'jobs_succeeded_total', kind='genre.create') == 0
    assert value(samples, 'jobs_retried_total', kind='user.credit') == 2
    assert value(samples, 'jobs_unfinished', kind='genre.create', status='queued') == 3
    assert value(samples, 'jobs_unfinished', kind='user.credit', status='running') == 1
    # Three genre messages and one batch message wait in the broker.
    assert value(samples, 'jobs_queue_depth', queue='jobs') == 4
    assert 90 <= value(samples, 'jobs_oldest_queued_age_seconds') < 120
    assert value(samples, 'jobs_lock_waits') >= 0
    bucket = lambda status, le: value(samples, 'jobs_duration_seconds_bucket',  # noqa: E731
                                      kind='user.credit', status=status, le=le)
    assert bucket('succeeded', '0.1') == 0 and bucket('succeeded', '0.25') == 1
    assert bucket('succeeded', '5.0') == 2 and bucket('succeeded', '+Inf') == 2
    assert bucket('failed', '0.025') == 1
    assert value(samples, 'jobs_duration_seconds_count',
                 kind='user.credit', status='succeeded') == 2
    assert value(samples, 'jobs_duration_seconds_sum',
                 kind='user.credit', status='succeeded') == pytest.approx(4.2)
    assert value(samples, 'jobs_metrics_up', source='postgres') == 1
    assert value(samples, 'jobs_metrics_up', source='redis') == 1
    assert DB_PASSWORD not in body


def test_metrics_of_an_empty_ledger(client):
    _, samples = scrape(client)
    assert value(samples, 'jobs_accepted_total', kind='genre.create') == 0
    assert value(samples, 'jobs_oldest_queued_age_seconds') == 0
    assert value(samples, 'jobs_queue_depth', queue='jobs') == 0


def test_metrics_say_which_source_is_down(make_app, app):
    client = make_app(CELERY_BROKER_URL='redis://127.0.0.1:1/0').test_client()
    _, samples = scrape(client)
    assert value(samples, 'jobs_metrics_up', source='redis') == 0
    assert value(samples, 'jobs_metrics_up', source='postgres') == 1
    assert ('jobs_queue_depth', (('queue', 'jobs'),)) not in samples
    assert value(samples, 'jobs_accepted_total', kind='genre.create') == 0


def test_concurrent_scrapes_share_one_computation(app, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor
    from web.metrics import LedgerCollector
    computed = []
    compute = LedgerCollector._compute

    def counted(self):
        computed.append(1)
        return compute(self)
    monkeypatch.setattr(LedgerCollector, '_compute', counted)
    monkeypatch.setattr('web.metrics.SHARED_SECONDS', 60.0)  # however slow the machine
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: app.test_client().get('/metrics'), range(16)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.get_data() for a in answers}) == 1
    assert len(computed) == 1


def test_settled_jobs_are_read_once_and_the_totals_stay_right(app, client, monkeypatch):
    from web import metrics
    collector = next(iter(app.extensions['metrics']._collector_to_names))
    monkeypatch.setattr(metrics, 'SHARED_SECONDS', 0.0)
    ids = client.post('/jobs/genre.create/batch', json=[GENRE] * 5).get_json()['ids']
    # Finished long ago (two of them failed): settled at the next scrape.
    sql(app, "UPDATE jobs SET status = 'succeeded', attempts = 1, "
             "created_at = now() - interval '1 hour', finished_at = now() - interval '59 minutes'")
    sql(app, "UPDATE jobs SET status = 'failed' WHERE id = ANY(:ids)", ids=ids[3:])
    _, samples = scrape(client)
    assert collector._through == ids[-1]
    assert value(samples, 'jobs_succeeded_total', kind='genre.create') == 3
    assert value(samples, 'jobs_failed_total', kind='genre.create') == 2

    # Settled rows are not read again: changed behind the collector's back, they count as before.
    sql(app, "UPDATE jobs SET kind = 'album.create' WHERE id = :i", i=ids[0])
    fresh = client.post('/jobs/genre.create', json=GENRE).get_json()['id']
    _, samples = scrape(client)
    assert value(samples, 'jobs_accepted_total', kind='genre.create') == 6
    assert value(samples, 'jobs_unfinished', kind='genre.create', status='queued') == 1
    sql(app, "UPDATE jobs SET kind = 'genre.create' WHERE id = :i", i=ids[0])

    # A settled failed job queued again: read anew, it counts as queued.
    assert client.post(f'/jobs/{ids[4]}/retry').status_code == 202
    _, samples = scrape(client)
    assert value(samples, 'jobs_failed_total', kind='genre.create') == 1
    assert value(samples, 'jobs_unfinished', kind='genre.create', status='queued') == 2
    assert collector._through < ids[4]
    assert fresh > ids[4]

    # The ledger emptied (ids restart at 1): what the collector kept is dropped.
    from pg import init_db
    with app.app_context():
        init_db(app).cleandb()
    again = client.post('/jobs/artist.create/batch',
                        json=[{'name': 'a', 'description': 'b', 'genre_id': 1}] * 2)
    assert again.get_json()['ids'] == [1, 2]
    _, samples = scrape(client)
    assert value(samples, 'jobs_accepted_total', kind='genre.create') == 0
    assert value(samples, 'jobs_accepted_total', kind='artist.create') == 2
