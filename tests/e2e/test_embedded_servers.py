"""`manage.py run` on a machine without servers: it starts an embedded
PostgreSQL and Redis (forced here with SERVICE_SERVERS=embedded, while the
configured URLs point at closed ports), hands their URLs to the Procfile's
processes, and on Ctrl-C or SIGTERM stops those processes, then the servers,
leaving nothing behind. The data (ledger, rows, queued messages) lasts to the next run.

Three runs on one temporary data folder, stopped with Ctrl-C (SIGINT to the
process group, as a terminal sends it) or SIGTERM to manage.py alone:
1. web + worker: jobs are applied; a second `run` on the folder refuses.
2. web alone: the jobs and rows of run 1 are there; new jobs stay queued.
3. the whole Procfile: run 2's queued jobs are applied (their messages were
   in Redis's append-only file; the sweep is held off), and new ones too.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg
import pytest
import redis
import requests

from tests.e2e.service import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FINISHED = ('succeeded', 'failed')

pytestmark = pytest.mark.timeout(240)


class Run:
    """One `manage.py run` in the background, its output in a file."""
    started = []

    def __init__(self, tmp_path, env, *processes):
        self.data = Path(env['SERVICE_DATA_DIR'])
        self.url = f'http://127.0.0.1:{env["PORT"]}'
        self.output_path = tmp_path / f'run-{time.monotonic_ns()}.log'
        with open(self.output_path, 'w') as out:
            self.process = subprocess.Popen(
                [sys.executable, os.path.join(ROOT, 'manage.py'), 'run', *processes],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)  # a process group of its own, as in a terminal
        self.started.append(self)

    def output(self):
        return self.output_path.read_text(errors='replace')

    def wait_web(self, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, 'manage.py run exited:\n' + self.output()
            try:
                if requests.get(self.url + '/health', timeout=5).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError('the web front did not come up:\n' + self.output())

    def ports(self):
        return json.loads((self.data / 'servers.json').read_text())['ports']

    def sql(self, statement):
        url = f'postgresql://ds:dsps@127.0.0.1:{self.ports()["postgresql"]}/ds'
        with psycopg.connect(url, connect_timeout=5) as conn:
            return conn.execute(statement).fetchall()

    def pids(self):
        """manage.py, everything it started (honcho, the Procfile's processes
        and theirs, Redis), and the postmaster (pg_ctl detaches it) with its children."""
        root = psutil.Process(self.process.pid)
        pids = {root.pid, *(p.pid for p in root.children(recursive=True))}
        postmaster = psutil.Process(int((self.data / 'postgres' / 'postmaster.pid')
                                        .read_text().split()[0]))
        return pids | {postmaster.pid, *(p.pid for p in postmaster.children(recursive=True))}

    def post(self, kind, payload):
        response = requests.post(f'{self.url}/jobs/{kind}', json=payload, timeout=30)
        assert response.status_code == 202, response.text
        return response.json()['id']

    def jobs(self, ids):
        return {i: requests.get(f'{self.url}/jobs/{i}', timeout=10).json() for i in ids}

    def wait_applied(self, ids, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.jobs(ids)
            if all(job['status'] in FINISHED for job in jobs.values()) or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert all(job['status'] == 'succeeded' for job in jobs.values()), jobs
        return jobs

    def stop(self, ctrl_c=True):
        """Ctrl-C (SIGINT to manage.py's process group, as a terminal sends it)
        or SIGTERM to manage.py alone; return the pids it had once it has exited."""
        pids = self.pids()
        if ctrl_c:
            os.killpg(self.process.pid, signal.SIGINT)
        else:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError('manage.py run did not stop:\n' + self.output())
        return pids


def left_over(pids, data):
    """The processes of `pids` still alive, and any other naming the data
    folder or running in it (Redis rewrites its command line)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    for process in psutil.process_iter(['cmdline', 'cwd']):
        if any(str(data) in part for part in [*(process.info['cmdline'] or ()),
                                              process.info['cwd'] or '']):
            alive.append(process.pid)
    return alive


@pytest.fixture
def data():
    """The servers' data folder, in the system's temporary folder (as root,
    PostgreSQL runs as a user of its own, who must pass through every folder
    above; pytest keeps its own temporary folders closed to others). Whatever
    a failed test left running on it is ended."""
    with tempfile.TemporaryDirectory(prefix='ds-embedded-') as folder:
        yield Path(folder)
        for run in Run.started:
            if run.process.poll() is None:
                run.process.send_signal(signal.SIGINT)
                try:
                    run.process.wait(60)
                except subprocess.TimeoutExpired:
                    run.process.kill()
        Run.started.clear()
        for pid in left_over([], folder):
            try:
                psutil.Process(pid).terminate()
            except psutil.NoSuchProcess:
                pass


@pytest.fixture
def run_env(tmp_path, data):
    """manage.py's environment: embedded servers forced, data in a temporary
    folder, and a .env of the test's own whose URLs lead nowhere."""
    env_file, port = tmp_path / 'env', free_port()
    env_file.write_text('\n'.join([
        'FLASK_CONFIG_PREFIXES=FLASK,SQLALCHEMY,CELERY',
        f'SQLALCHEMY_DEFAULT=postgresql://ds:dsps@127.0.0.1:{free_port()}/ds',
        f'CELERY_BROKER_URL=redis://127.0.0.1:{free_port()}/0',
        f'PORT={port}', f'FLOWER_PORT={free_port()}',
        'SERVICE_MODE=development', 'FLASK_API_TOKENS=', 'FLASK_SECRET_KEY=embedded-e2e',
        'FLOWER_BASIC_AUTH=flower:embedded-e2e-secret',
        f'BEAT_SCHEDULE_FILE={tmp_path / "beat-schedule"}',
        'SERVICE_SERVERS=embedded', 'WORKER_SWEEP_AGE_SECONDS=3600', 'WEB_CONCURRENCY=1',
        'WORKER_CONCURRENCY=1', 'LOG_FORMAT=text', '']))
    env = {name: os.environ[name] for name in ('PATH', 'HOME', 'LANG') if name in os.environ}
    env.update(MANAGE_ENV_FILE=str(env_file), SERVICE_DATA_DIR=str(data),
               PORT=str(port))
    return env


def test_run_on_embedded_servers_keeps_its_data_and_leaves_nothing(tmp_path, data, run_env):
    genres = [{'name': f'g{i}', 'description': 'x'} for i in range(40)]

    first = Run(tmp_path, run_env, 'web', 'worker').wait_web()
    output = first.output()
    assert 'PostgreSQL 18: embedded' in output and 'Redis: embedded' in output, output
    assert f'data in {data}' in output
    applied = first.wait_applied([first.post('genre.create', g) for g in genres[:10]])
    assert first.sql('SELECT count(*) FROM genre') == [(10,)]

    second = subprocess.run([sys.executable, os.path.join(ROOT, 'manage.py'), 'run'], cwd=ROOT,
                            env=run_env, capture_output=True, text=True, timeout=60)
    assert second.returncode != 0 and 'in use by process' in second.stderr, second
    assert first.process.poll() is None

    pids = first.stop(ctrl_c=True)
    assert first.output().rstrip().endswith('embedded servers stopped'), first.output()
    assert not left_over(pids, data), first.output()

    web_only = Run(tmp_path, run_env, 'web').wait_web()
    assert {i: job['status'] for i, job in web_only.jobs(applied).items()} == \
        {i: 'succeeded' for i in applied}
    assert web_only.sql('SELECT count(*) FROM genre') == [(10,)]
    queued = [web_only.post('genre.create', g) for g in genres[10:20]]
    assert {job['status'] for job in web_only.jobs(queued).values()} == {'queued'}
    pids = web_only.stop(ctrl_c=False)
    assert not left_over(pids, data), web_only.output()

    everything = Run(tmp_path, run_env).wait_web()
    everything.wait_applied(queued)
    more = everything.wait_applied([everything.post('genre.create', g) for g in genres[20:]])
    assert len(more) == 20
    assert everything.sql('SELECT count(*) FROM genre') == [(40,)]
    assert everything.sql("SELECT count(*) FROM jobs WHERE status = 'succeeded'") == [(40,)]
    pids = everything.stop(ctrl_c=True)
    assert not left_over(pids, data), everything.output()


def test_the_test_servers_answer():
    """The servers the tests were given answer (run by the next test inside
    `manage.py test`, and in every run of the suite)."""
    from tests.settings import BROKER_URL, DATABASE2_URL, DATABASE_URL
    for url in (DATABASE_URL, DATABASE2_URL):
        with psycopg.connect(url, connect_timeout=5) as conn:
            assert conn.execute('SELECT 1').fetchone() == (1,)
    assert redis.Redis.from_url(BROKER_URL, socket_timeout=5).ping()


def bare_loopback():
    """A command prefix that runs a command where nothing answers at 127.0.0.1
    (a network namespace of its own, loopback up: root only), or None."""
    prefix = ['unshare', '--net', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh']
    try:
        done = subprocess.run([*prefix, 'true'], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return prefix if done.returncode == 0 else None


def test_manage_test_uses_embedded_servers_where_nothing_answers(data):
    """`manage.py test` (auto) where nothing answers at the default URLs: a
    network namespace of its own when we may make one, else the URLs point at
    closed ports and the embedded servers are asked for. pytest gets the
    embedded servers' URLs (or the test above could not connect), and they are
    stopped after. (The machine's when they answer: tests/unit/test_manage.py.)"""
    env = {name: value for name, value in os.environ.items() if not name.startswith('TEST_')}
    env['SERVICE_DATA_DIR'] = str(data)
    command = [sys.executable, 'manage.py', 'test', '-p', 'no:cacheprovider',
               '--q', 'tests/e2e/test_embedded_servers.py::test_the_test_servers_answer']
    prefix = bare_loopback()
    if prefix:
        command = [*prefix, *command]
    else:
        env.update(TEST_DATABASE_URL=f'postgresql://ds:dsps@127.0.0.1:{free_port()}/ds_test',
                   TEST_DATABASE2_URL=f'postgresql://ds:dsps@127.0.0.1:{free_port()}/ds2_test',
                   TEST_BROKER_URL=f'redis://127.0.0.1:{free_port()}/12',
                   SERVICE_SERVERS='embedded')
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and '1 passed' in result.stdout, output
    assert 'PostgreSQL 18: embedded, on 127.0.0.1' in output, output
    assert f'data in {data / "test" / "postgres"}' in output
    assert 'Redis: embedded' in output
    assert output.rstrip().endswith('embedded servers stopped'), output
    assert not left_over([], data), output
