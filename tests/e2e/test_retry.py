"""POST /jobs/<id>/retry of a job that spent all its attempts, applied by the
real worker: the retry is a fresh start, not the attempt after the last."""
import time

from sqlalchemy import text


def test_a_job_that_spent_its_attempts_is_retried_afresh_and_applied_once(clean):
    svc = clean
    created = svc.run('user.create', {'username': 'r', 'email': 'r@example.com',
                                      'password': 'long enough'})
    user_id = created['result']['id']
    engine = svc.db.pool.connection().engine
    with engine.connect() as holder:
        # The user's row stays locked: each attempt of the credit meets the lock
        # timeout (transient) until the job gives up after WORKER_MAX_ATTEMPTS.
        holder.execute(text('SELECT id FROM users WHERE id = :i FOR UPDATE'), {'i': user_id})
        spent = svc.run('user.credit', {'user_id': user_id, 'amount': 7}, timeout=60)
        holder.rollback()
    max_attempts = int(svc.env['WORKER_MAX_ATTEMPTS'])
    assert spent['status'] == 'failed' and spent['attempts'] == max_attempts, spent
    assert f'gave up after {max_attempts} attempts' in spent['error']

    retried = svc.http.post(f'{svc.url}/jobs/{spent["id"]}/retry', timeout=10)
    assert retried.status_code == 202, retried.text
    job = svc.wait_jobs([spent['id']])[spent['id']]
    assert (job['status'], job['attempts'], job['error']) == ('succeeded', 1, None), job
    time.sleep(0.5)  # a late second delivery would have credited again by now
    assert svc.sql('SELECT credit_score FROM users WHERE id = :i', i=user_id)[0][0] == 7
