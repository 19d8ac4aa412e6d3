"""A worker SIGKILLed (main process and pool, as a container dies) while it
holds jobs, claimed and prefetched, with jobs still coming and a backlog
building: with default settings every job is applied once, and the last
one within 15 s of the kill. A live worker refreshes the messages it holds
(worker.broker); beat's sweep hands back those of the dead one at once and
republishes the claims whose owner's advisory lock is gone."""
import os
import signal
import threading
import time

import pytest
import requests

from tests.e2e.service import Service, free_port

RECOVERY_SECONDS = 15
BATCH = 100


def defaults_env(service_env, log_dir):
    """The e2e environment with the service's default recovery settings."""
    env = {k: v for k, v in service_env.items()
           if not k.startswith('WORKER_') and k != 'SQLALCHEMY_LOCK_TIMEOUT_MS'}
    env.update(PORT=str(free_port()), BEAT_SCHEDULE_FILE=os.path.join(log_dir, 'death-beat'))
    return env


class Poster(threading.Thread):
    """POSTs batches of genres until stopped; keeps the ids accepted."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.ids, self.failures = url, [], []
        self.stopping = threading.Event()

    def run(self):
        http, n = requests.Session(), 0
        while not self.stopping.is_set():
            items = [{'name': f'death-{n + i}', 'description': 'death'} for i in range(BATCH)]
            n += BATCH
            answer = http.post(f'{self.url}/jobs/genre.create/batch', json=items, timeout=30)
            if answer.status_code == 202:
                self.ids += answer.json()['ids']
            else:
                self.failures.append(answer.status_code)


@pytest.fixture
def broker_alone(service):
    """The test broker with no other worker on it: the session's worker
    (other e2e tests) is stopped meanwhile, then started again."""
    service.stop('worker')
    yield
    service.start('worker')
    service.wait_worker()


def test_a_killed_workers_jobs_run_again_within_seconds(service_env, tmp_path, broker_alone):
    # A service of its own (not the session's: its worker would take the messages).
    svc = Service(defaults_env(service_env, str(tmp_path)), str(tmp_path))
    with svc.app.app_context():
        svc.db.syncdb()
        svc.db.cleandb()
    svc.celery.connection_for_write().default_channel.client.flushdb()
    with svc.running('web', 'worker', 'beat'):
        broker = svc.celery.connection_for_write().default_channel.client
        poster = Poster(svc.url)
        poster.start()
        try:
            # Until the worker holds messages (some claimed) and has applied some.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (
                    len(poster.ids) > 2000 and broker.hlen('unacked') >= 2 and svc.sql(
                        "SELECT count(*) FROM jobs WHERE status = 'running'")[0][0]):
                time.sleep(0.005)
            svc.stop('worker', signal.SIGKILL)
            killed_at = svc.sql('SELECT clock_timestamp()')[0][0]
            held = broker.hlen('unacked')
            running = svc.sql("SELECT count(*) FROM jobs WHERE status = 'running'")[0][0]
            svc.start('worker')
            time.sleep(3)  # jobs keep coming while the new worker starts: a backlog
            backlog = broker.llen('jobs')
        finally:
            poster.stopping.set()
            poster.join()
        ids = poster.ids
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and svc.sql(
                "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")[0][0]:
            time.sleep(0.2)
        statuses = dict(svc.sql('SELECT status, count(*) FROM jobs GROUP BY status'))
        last = svc.sql('SELECT max(finished_at) FROM jobs')[0][0]
        applied = svc.sql("SELECT count(*), count(DISTINCT name) FROM genre "
                          "WHERE description = 'death'")[0]
        beat_log = svc.processes['beat'].log()
        print('\n'.join(line for line in beat_log.splitlines() if 'sweep' in line))
    recovery = (last - killed_at).total_seconds()
    print(f'\nworker death: accepted={len(ids)} held_at_kill={held} running_at_kill={running} '
          f'backlog={backlog} applied={applied[0]} distinct={applied[1]} '
          f'last_applied_after_kill={recovery:.1f}s')
    assert not poster.failures
    assert held > 0 and backlog > 0
    assert statuses == {'succeeded': len(ids)}, (statuses, beat_log[-3000:])
    assert tuple(applied) == (len(ids), len(ids))  # each once
    assert recovery <= RECOVERY_SECONDS, beat_log[-3000:]
