"""The ledger's changes that used to be scattered: a retry that the broker
refuses, and a handler's bug told from the job's own fault. In-process, on
the real database and Redis (db 10); the worker's runner is driven directly."""
from types import SimpleNamespace

import pytest
from sqlalchemy import text

from tests.integration.service import service_fixtures

BROKER_URL = 'redis://127.0.0.1:6379/10'
CLOSED_PORT_REDIS = 'redis://127.0.0.1:1/0'

broker, make_app, clean, app, client = service_fixtures(BROKER_URL)


def sql(app, statement, **params):
    with app.extensions['pg'].pool.connection().engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return result.fetchall() if result.returns_rows else None


def failed_job(app, kind='genre.create', payload=None, attempts=5, error='gave up'):
    import ledger
    with app.app_context():
        [job_id] = ledger.insert_jobs(app.extensions['pg'].pool.connection().session,
                                      [(kind, payload or {'name': 'n', 'description': 'd'})])
        app.extensions['pg'].pool.commit()
    sql(app, "UPDATE jobs SET status = 'failed', attempts = :a, error = :e, "
             "finished_at = now() WHERE id = :i", a=attempts, e=error, i=job_id)
    return job_id


def row(app, job_id):
    return sql(app, 'SELECT status, attempts, error, finished_at IS NOT NULL '
                    'FROM jobs WHERE id = :i', i=job_id)[0]


def test_a_retry_the_broker_refuses_is_503_and_the_job_stays_failed_and_retriable(make_app, clean,
                                                                                    broker):
    job_id = failed_job(clean, attempts=3, error='boom')
    down = make_app(CELERY_BROKER_URL=CLOSED_PORT_REDIS).test_client()
    refused = down.post(f'/jobs/{job_id}/retry')
    assert refused.status_code == 503 and refused.headers['Retry-After']
    assert row(clean, job_id) == ('failed', 3, 'boom', True)
    assert broker.llen('jobs') == 0

    again = clean.test_client().post(f'/jobs/{job_id}/retry')
    assert again.status_code == 202, again.get_json()
    assert row(clean, job_id) == ('queued', 0, None, False)
    assert broker.llen('jobs') == 1


def test_a_retry_starts_the_attempts_afresh(clean):
    job_id = failed_job(clean, attempts=5)
    assert clean.test_client().post(f'/jobs/{job_id}/retry').status_code == 202
    assert row(clean, job_id) == ('queued', 0, None, False)


@pytest.mark.parametrize('status', ['queued', 'succeeded'])
def test_only_a_failed_job_is_retried(clean, status):
    job_id = failed_job(clean)
    sql(clean, 'UPDATE jobs SET status = :s WHERE id = :i', s=status, i=job_id)
    answer = clean.test_client().post(f'/jobs/{job_id}/retry')
    assert answer.status_code == 409 and status in answer.get_json()['message']


class Task:
    """What run_job uses of a bound Celery task."""
    request = SimpleNamespace(retries=0)

    def apply_async(self, args, countdown):
        raise AssertionError('no retry expected')

    def retry(self, countdown, exc):
        raise AssertionError(f'no retry expected: {exc}')


@pytest.fixture
def buggy_kind():
    """A kind whose handler has a bug that raises ValueError."""
    from tasks.kinds import REGISTRY, kind

    @kind('probe.buggy', schema={'type': 'object', 'additionalProperties': False})
    def buggy(payload):
        raise ValueError('a bug in the handler')
    yield 'probe.buggy'
    REGISTRY.pop('probe.buggy')


def test_a_value_error_of_a_handler_is_an_internal_error_not_the_jobs_fault(clean, buggy_kind,
                                                                             caplog):
    import ledger
    from worker.execution import JobsFailed, run_job
    with clean.app_context():
        [job_id] = ledger.insert_jobs(clean.extensions['pg'].pool.connection().session,
                                      [(buggy_kind, {})])
        clean.extensions['pg'].pool.commit()
        with pytest.raises(JobsFailed):
            run_job(Task(), job_id)
    status, attempts, error, _ = row(clean, job_id)
    assert (status, attempts) == ('failed', 1)
    assert error == 'internal error: ValueError'
    assert any(r.levelname == 'ERROR' and r.exc_info for r in caplog.records)
