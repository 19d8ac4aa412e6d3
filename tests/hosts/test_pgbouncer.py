"""The service behind PgBouncer in transaction pooling mode (Debian's
pgbouncer, started by the test on a free port with a configuration of its
own, in front of the test database), with SQLALCHEMY_PGBOUNCER=true.

What transaction pooling breaks, and what the test holds:
- startup options (pg/pool.py's `options=-c plan_cache_mode=... -c
  lock_timeout=...`): PgBouncer refuses the connection; with the setting the
  service sends none and sets both in each transaction (set_config(..., true)):
  the lock timeout still holds (a job meeting a held row lock is retried);
- prepared statements (psycopg prepares a statement run 5 times): PgBouncer
  before 1.21 (Debian 12 has 1.18) does not follow them from one server
  connection to the next; with the setting psycopg prepares none;
- advisory locks and other session state: the service uses none (row locks,
  SET LOCAL and set_config(..., true) only last a transaction).
"""
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from service.brokers import empty as empty_broker
from tests.e2e.service import FLOWER_AUTH, Service, free_port
from tests.settings import BROKER_URL, DATABASE_URL

LOCK_TIMEOUT_MS = 300


class OwnPgBouncer:
    """pgbouncer in transaction pooling mode on a free port of 127.0.0.1, in
    front of the database of `url`; run as the postgres user (it refuses root)."""

    def __init__(self, url, pool_size=8):
        if shutil.which('pgbouncer') is None:
            pytest.fail('the PgBouncer test needs pgbouncer (apt-get install pgbouncer)')
        self.target = make_url(url)
        self.port = free_port()
        self.base = tempfile.mkdtemp(prefix='pgbouncer-')
        self.config = os.path.join(self.base, 'pgbouncer.ini')
        self.log_path = os.path.join(self.base, 'pgbouncer.log')
        t = self.target
        with open(os.path.join(self.base, 'userlist.txt'), 'w') as f:
            f.write(f'"{t.username}" "{t.password}"\n')
        with open(self.config, 'w') as f:
            f.write(f"""[databases]
{t.database} = host={t.host} port={t.port or 5432} dbname={t.database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {self.base}/userlist.txt
admin_users = {t.username}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
logfile = {self.log_path}
pidfile = {self.base}/pgbouncer.pid
""")
        self.popen = None

    def url(self, database=None):
        return self.target.set(host='127.0.0.1', port=self.port,
                               database=database or self.target.database
                               ).render_as_string(hide_password=False)

    def start(self, timeout=30):
        command = ['pgbouncer', self.config]
        if os.geteuid() == 0:
            owner = pwd.getpwnam('postgres')
            for path in [self.base, *(os.path.join(self.base, n) for n in os.listdir(self.base))]:
                os.chown(path, owner.pw_uid, owner.pw_gid)
            command = ['runuser', '-u', 'postgres', '--', *command]
        self.popen = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f'pgbouncer exited:\n{self.log()[-2000:]}')
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return self
            except psycopg.Error:
                time.sleep(0.2)
        raise RuntimeError(f'pgbouncer did not answer:\n{self.log()[-2000:]}')

    def admin(self, command):
        """A SHOW command of PgBouncer's console: rows as dicts."""
        with psycopg.connect(self.url('pgbouncer'), autocommit=True,
                             prepare_threshold=None) as conn:
            cursor = conn.execute(command)
            names = [c.name for c in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def log(self):
        try:
            with open(self.log_path, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def stop(self):
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope='module')
def bouncer():
    server = OwnPgBouncer(DATABASE_URL)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope='module')
def bounced(bouncer, tmp_path_factory):
    """web, worker and beat on the test database through PgBouncer."""
    empty_broker(BROKER_URL)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('FLASK_', 'SQLALCHEMY_', 'CELERY_', 'WORKER_'))}
    env.update({
        'PATH': os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', ''),
        'FLASK_CONFIG_PREFIXES': 'FLASK,SQLALCHEMY,CELERY', 'FLASK_API_TOKENS': '',
        'SQLALCHEMY_DEFAULT': bouncer.url(), 'SQLALCHEMY_PGBOUNCER': 'true',
        'SQLALCHEMY_LOCK_TIMEOUT_MS': str(LOCK_TIMEOUT_MS),
        'CELERY_BROKER_URL': BROKER_URL, 'PORT': str(free_port()),
        'FLOWER_PORT': str(free_port()), 'FLOWER_BASIC_AUTH': FLOWER_AUTH,
        'WEB_CONCURRENCY': '2', 'WORKER_CONCURRENCY': '2',
        'WORKER_MAX_ATTEMPTS': '6', 'WORKER_RETRY_BASE_SECONDS': '0.2',
        'WORKER_RETRY_MAX_SECONDS': '1',
        'BEAT_SCHEDULE_FILE': str(tmp_path_factory.mktemp('beat') / 'schedule'),
    })
    svc = Service(env, str(tmp_path_factory.mktemp('logs-pgbouncer')))
    with svc.app.app_context():
        svc.db.syncdb()
        svc.db.cleandb()
    svc.start('beat')
    with svc.running('web', 'worker'):
        yield svc
    for connection in svc.db.pool.connections.values():
        connection.engine.dispose()


def test_pgbouncer_refuses_the_startup_options_the_service_sends_without_the_setting(bouncer):
    with pytest.raises(psycopg.OperationalError, match='unsupported startup parameter'):
        psycopg.connect(bouncer.url(), options='-c lock_timeout=1000', connect_timeout=5)


def test_the_settings_hold_in_each_transaction_through_pgbouncer(bounced):
    engine = bounced.db.pool.connection().engine
    for _ in range(12):  # past psycopg's prepare threshold (5), on whichever server connection
        with engine.connect() as conn:
            assert conn.execute(text('SHOW lock_timeout')).scalar() == f'{LOCK_TIMEOUT_MS}ms'
            assert conn.execute(text('SHOW plan_cache_mode')).scalar() == 'force_custom_plan'
            assert conn.execute(text('SELECT count(*) FROM jobs WHERE id = :i'),
                                {'i': 1}).scalar() >= 0


def test_the_pipeline_through_pgbouncer(bounced, bouncer):
    svc = bounced
    started = time.monotonic()
    users = [svc.run('user.create', {'username': f'b{i}', 'email': f'b{i}@example.com',
                                     'password': 'long enough'})['result']['id'] for i in range(2)]
    # A row lock held longer than the lock timeout: the job must meet the
    # timeout (set per transaction) and be retried, not wait it out.
    engine = svc.db.pool.connection().engine
    locked, release = threading.Event(), threading.Event()

    def hold():
        with engine.connect() as conn:
            conn.execute(text('SELECT id FROM users WHERE id = :i FOR UPDATE'), {'i': users[0]})
            locked.set()
            release.wait(10)
            conn.rollback()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    blocked = svc.post('user.credit', {'user_id': users[0], 'amount': 1000})
    time.sleep(1.5)
    release.set()
    holder.join()

    requests_ = []
    for i in range(300):
        if i % 3 == 0:
            requests_.append(('genre.create', {'name': f'pgb-{i}', 'description': 'pgbouncer'}))
        else:
            requests_.append(('user.credit', {'user_id': users[i % 2], 'amount': i % 7 + 1}))
    responses = svc.post_many(requests_, threads=16)
    batch = svc.http.post(f'{svc.url}/jobs/genre.create/batch', timeout=30,
                          json=[{'name': f'pgb-batch-{i}', 'description': 'pgbouncer'}
                                for i in range(200)])
    assert [r.status_code for r in responses] == [202] * 300 and batch.status_code == 202
    ids = [r.json()['id'] for r in responses] + batch.json()['ids'] + [blocked.json()['id']]
    jobs = svc.wait_jobs(ids, timeout=120)
    seconds = time.monotonic() - started

    assert Counter(j['status'] for j in jobs.values()) == {'succeeded': len(ids)}
    assert jobs[blocked.json()['id']]['attempts'] >= 2, 'the lock timeout did not hold'
    names = Counter(n for (n,) in svc.sql("SELECT name FROM genre WHERE description = 'pgbouncer'"))
    assert set(names.values()) == {1} and len(names) == 100 + 200
    credits = dict(svc.sql('SELECT id, credit_score FROM users WHERE id = ANY(:ids)', ids=users))
    for n, user in enumerate(users):
        expected = sum(p['amount'] for k, p in requests_
                       if k == 'user.credit' and p['user_id'] == user)
        assert credits[user] == expected + (1000 if n == 0 else 0)
    logs = '\n'.join(p.log() for p in svc.processes.values())
    assert 'prepared statement' not in logs and 'unsupported startup parameter' not in logs
    pools = [p for p in bouncer.admin('SHOW POOLS') if p['database'] != 'pgbouncer']
    clients = [c for c in bouncer.admin('SHOW CLIENTS') if c['database'] != 'pgbouncer']
    servers = sum(p['sv_active'] + p['sv_idle'] + p['sv_used'] + p['sv_tested'] + p['sv_login']
                  for p in pools)
    print(f'\npgbouncer pipeline: jobs={len(ids)} seconds={seconds:.1f} '
          f'client_connections={len(clients)} server_connections={servers} '
          f'retried_on_lock_timeout={jobs[blocked.json()["id"]]["attempts"] - 1}')
    assert servers <= 8 < len(clients), (servers, len(clients))
