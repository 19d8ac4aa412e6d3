"""Observability of the running service (the Procfile's web and worker): a
request id followed from the POST into the ledger and the worker's log, every
log line a JSON object, /metrics counting what happened, and no database
password in any of it."""
import json
import re
import time
import uuid

from prometheus_client.parser import text_string_to_metric_families

from tests.settings import DATABASE_URL

DB_PASSWORD = re.search(r'//[^:/]+:([^@]+)@', DATABASE_URL).group(1)


def json_lines(text):
    """Every line of a log as a JSON object (AssertionError naming the first that is not)."""
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f'line {number} is not JSON: {line[:300]!r}') from None
        assert isinstance(record, dict), line
        assert {'time', 'level', 'logger', 'message'} <= set(record), line
        records.append(record)
    return records


def scrape(svc):
    answer = svc.http.get(svc.url + '/metrics', timeout=30)
    assert answer.status_code == 200, answer.text
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return answer.text, samples


def test_a_request_id_is_followed_into_the_worker_and_every_line_is_json(clean):
    svc = clean
    request_id = f'e2e-{uuid.uuid4().hex}'
    missing_user = svc.post('user.credit', {'user_id': 2**31 - 1, 'amount': 5},
                            headers={'X-Request-ID': request_id})
    assert missing_user.status_code == 202 and missing_user.headers['X-Request-ID'] == request_id
    job_id = missing_user.json()['id']
    genres = svc.post_many([('genre.create', {'name': f'g{i}', 'description': 'd'})
                            for i in range(3)])
    assert all(r.status_code == 202 for r in genres)
    invalid = svc.post('genre.create', {'name': 1})
    assert invalid.status_code == 400 and re.fullmatch('[0-9a-f]{32}', invalid.headers['X-Request-ID'])
    done = svc.wait_jobs([job_id, *(r.json()['id'] for r in genres)])
    assert done[job_id]['status'] == 'failed' and done[job_id]['request_id'] == request_id
    assert svc.sql('SELECT request_id FROM jobs WHERE id = :i', i=job_id) == [(request_id,)]

    worker = svc.processes['worker']
    deadline = time.monotonic() + 30
    while True:
        records = json_lines(worker.log())
        about = [r for r in records if r.get('request_id') == request_id
                 or request_id in r.get('request_ids', ())]
        if any(r['level'] == 'WARNING' for r in about) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    failed = [r for r in about if r['level'] == 'WARNING']
    assert failed, f'no worker line with {request_id}: {about}'
    assert failed[0]['message'] == f'job {job_id} failed: user {2**31 - 1} does not exist'

    body, samples = scrape(svc)
    value = lambda name, **labels: samples[(name, tuple(sorted(labels.items())))]  # noqa: E731
    assert value('jobs_accepted_total', kind='genre.create') == 3
    assert value('jobs_succeeded_total', kind='genre.create') == 3
    assert value('jobs_failed_total', kind='user.credit') == 1
    assert value('jobs_accepted_total', kind='user.credit') == 1
    assert value('jobs_unfinished', kind='genre.create', status='queued') == 0
    assert value('jobs_queue_depth', queue='jobs') == 0
    assert value('jobs_oldest_queued_age_seconds') == 0
    assert value('jobs_duration_seconds_count', kind='genre.create', status='succeeded') == 3
    assert value('jobs_metrics_up', source='postgres') == value('jobs_metrics_up', source='redis') == 1

    web_log, worker_log = svc.processes['web'].log(), worker.log()
    assert json_lines(web_log) and json_lines(worker_log)
    for text in (body, web_log, worker_log):
        assert DB_PASSWORD not in text
