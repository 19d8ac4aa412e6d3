"""The whole service as processes, started from the Procfile's own commands
(cli.processes), and a client of it: the e2e tests' `Service`, and
`start_service` for the fixtures that start one (tests/e2e/conftest.py)."""
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import requests

from cli.processes import Process
from service.brokers import empty as empty_broker

FLOWER_AUTH = 'flower:e2e-secret'
FINISHED = ('succeeded', 'failed')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Service:
    """The started processes, an HTTP client of the web front, and an app of
    the same configuration for looking at the database and the broker."""

    def __init__(self, env, log_dir):
        self.env = env
        self.log_dir = log_dir
        self.url = f'http://127.0.0.1:{env["PORT"]}'
        self.http = requests.Session()
        self.processes = {}
        from web import create_app
        self.app = create_app(config={k: v for k, v in env.items()
                                      if k.startswith(('SQLALCHEMY_', 'CELERY_', 'WORKER_'))})
        self.db = self.app.extensions['pg']
        self.celery = self.app.extensions['celery']

    def start(self, name, **extra_env):
        self.processes[name] = Process(name, {**self.env, **extra_env}, self.log_dir)
        return self.processes[name]

    def stop(self, name, sig=signal.SIGTERM):
        self.processes.pop(name).stop(sig)

    @contextmanager
    def running(self, *names):
        """Start the processes (web and worker among them), wait until both
        answer, and stop every process on the way out."""
        for name in names:
            self.start(name)
        try:
            self.wait_web()
            self.wait_worker()
            yield self
        finally:
            self.stop_all()

    def stop_all(self):
        for name in list(self.processes):
            self.stop(name)

    def wait_web(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.http.get(self.url + '/health', timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError('the web front did not come up:\n' + self.processes['web'].log())

    def wait_worker(self, node=None, timeout=30):
        """Until a worker answers a ping (the one named `node`, if given)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.celery.control.ping(timeout=0.5, destination=[node] if node else None):
                return
        raise AssertionError('no worker answered:\n' + self.processes['worker'].log())

    def post(self, kind, payload, **kwargs):
        return self.http.post(f'{self.url}/jobs/{kind}', json=payload, timeout=30, **kwargs)

    def post_many(self, requests_, threads=8):
        """POST (kind, payload) pairs concurrently; return the responses in order."""
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(lambda r: self.post(*r), requests_))

    def job(self, job_id):
        return self.http.get(f'{self.url}/jobs/{job_id}', timeout=10).json()

    def wait_jobs(self, ids, timeout=60):
        """Poll until every job is finished; return them by id."""
        deadline = time.monotonic() + timeout
        pending, done = list(ids), {}
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                job = self.job(job_id)
                if job['status'] in FINISHED:
                    done[job_id] = job
                    pending.remove(job_id)
            if pending:
                time.sleep(0.1)
        assert not pending, f'{len(pending)} jobs unfinished, e.g. {self.job(pending[0])}'
        return done

    def run(self, kind, payload, timeout=60):
        """POST one job and wait for it; return the finished job."""
        response = self.post(kind, payload)
        assert response.status_code == 202, response.text
        return self.wait_jobs([response.json()['id']], timeout)[response.json()['id']]

    def sql(self, statement, **params):
        with self.app.app_context():
            from ledger import Job
            rows = Job.objects.raw_sql(statement, **params).fetchall()
            self.db.pool.commit()
            return rows


def start_service(env, log_dir):
    """web and worker running on `env`; the tables made; the broker empty."""
    empty_broker(env['CELERY_BROKER_URL'])
    svc = Service(env, log_dir)
    with svc.app.app_context():
        svc.db.syncdb()
        svc.db.cleandb()
    return svc.running('web', 'worker')
