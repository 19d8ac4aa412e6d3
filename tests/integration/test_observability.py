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

from tests.integration.service import service_fixtures
from tests.integration.task_double import Task
from tests.settings import DATABASE_URL, redis_url
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


def worker_did(app, job_ids, outcome, seconds, attempts=1):
    """What a worker does, through the ledger: claim the jobs `attempts`
    times, then complete or fail them `seconds` after their acceptance."""
    import ledger
    sql(app, "UPDATE jobs SET created_at = clock_timestamp() - make_interval(secs => :s) "
             "WHERE id = ANY(:ids)", s=seconds, ids=job_ids)
    with app.app_context():
        session = app.extensions['pg'].pool.connection().session
        for _ in range(attempts):
            ledger.claim(session, job_ids)
        if outcome == 'succeeded':
            ledger.lock_running(session, job_ids)
            ledger.complete(session, [(job_id, {'id': job_id}) for job_id in job_ids])
            session.commit()
        elif outcome == 'failed':
            for job_id in job_ids:
                ledger.fail(session, job_id, 'no such user')


def test_metrics_count_the_ledger_and_the_queue(app, client):
    for _ in range(3):
        assert client.post('/jobs/genre.create', json=GENRE).status_code == 202
    credits = client.post('/jobs/user.credit/batch', json=[{'user_id': 1, 'amount': 1}] * 4)
    assert credits.status_code == 202
    # Two credits applied (one at its third attempt), one failed, one
    # running; the genres stay queued.
    succeeded, also, failed, running = credits.get_json()['ids']
    worker_did(app, [succeeded], 'succeeded', 0.15)
    worker_did(app, [also], 'succeeded', 4, attempts=3)
    worker_did(app, [failed], 'failed', 0.01)
    worker_did(app, [running], 'running', 0)
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
    assert bucket('succeeded', '0.1') == 0 and bucket('succeeded', '2.5') == 1
    assert bucket('succeeded', '5.0') == 2 and bucket('succeeded', '+Inf') == 2
    assert bucket('failed', '1.0') == 1 and value(samples, 'jobs_duration_seconds_count', kind='user.credit', status='failed') == 1
    assert value(samples, 'jobs_duration_seconds_count',
                 kind='user.credit', status='succeeded') == 2
    assert value(samples, 'jobs_duration_seconds_sum',
                 kind='user.credit', status='succeeded') == pytest.approx(4.15, abs=0.5)
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


def test_counters_never_go_down_across_a_retry_and_a_prune(app, client, monkeypatch):
    """Prometheus reads a counter that falls as a reset: a failed job queued
    again, and finished jobs deleted by the pruning, leave every *_total as
    it was; the retried job's new outcome adds to them."""
    import ledger
    from web import metrics
    monkeypatch.setattr(metrics, 'SHARED_SECONDS', 0.0)
    ids = client.post('/jobs/genre.create/batch', json=[GENRE] * 5).get_json()['ids']
    worker_did(app, ids[:3], 'succeeded', 1.0)
    worker_did(app, ids[3:], 'failed', 1.0)
    names = ('jobs_accepted_total', 'jobs_succeeded_total', 'jobs_failed_total',
             'jobs_retried_total', 'jobs_duration_seconds_count')
    history = []

    def counters():
        _, samples = scrape(client)
        found = {(name, labels): number for (name, labels), number in samples.items()
                 if name in names}
        if history:  # never below the last scrape
            assert all(found.get(key, 0) >= number for key, number in history[-1].items()), \
                (history[-1], found)
        history.append(found)
        return found

    first = counters()
    assert first[('jobs_failed_total', (('kind', 'genre.create'),))] == 2
    assert client.post(f'/jobs/{ids[4]}/retry').status_code == 202
    assert counters() == first  # queued again: nothing counted is lost
    worker_did(app, [ids[4]], 'succeeded', 0.5)
    after_retry = counters()
    assert after_retry[('jobs_succeeded_total', (('kind', 'genre.create'),))] == 4
    assert after_retry[('jobs_failed_total', (('kind', 'genre.create'),))] == 2
    sql(app, "UPDATE jobs SET created_at = now() - interval '41 days', "
             "finished_at = now() - interval '40 days'")
    with app.app_context():
        deleted = ledger.prune(app.extensions['pg'].pool.connection().session,
                               {'succeeded': 86400, 'failed': 86400}, key_window=3600)
    assert deleted == {'succeeded': 4, 'failed': 1}
    assert counters() == after_retry
    assert sql(app, 'SELECT count(*) FROM jobs')[0][0] == 0

    # A session that counted and ended: its rows folded by the sweep, the sums kept.
    from sqlalchemy import create_engine
    ended = create_engine(DATABASE_URL)
    with ended.begin() as conn:
        ledger.counts.add(conn, 'genre.create', 'accepted', 3)
    ended.dispose()
    before_fold = counters()
    assert before_fold[('jobs_accepted_total', (('kind', 'genre.create'),))] == 8
    with app.app_context():
        session = app.extensions['pg'].pool.connection().session
        ledger.fold_counts(session)
        session.commit()
    assert counters() == before_fold
    assert sql(app, 'SELECT count(*) FROM job_counts WHERE slot <> 0 AND slot NOT IN '
                    '(SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)')[0][0] == 0
    assert sql(app, 'SELECT count(*) FROM job_counts WHERE slot = 0')[0][0] > 0
