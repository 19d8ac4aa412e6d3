"""The service spread over hosts: network namespaces on a private network of
the test's own, each process started in its host's namespace from the
Procfile's command.

    client (the test) 10.200.0.100 --+
    db     (PostgreSQL) 10.200.0.2 --+
    broker (Redis)      10.200.0.3 --+-- br0, a bridge in a namespace of its own
    web1, web2     10.200.0.11, .12 --+
    worker1, worker2 10.200.0.21, .22 -+
    ops (beat, Flower) 10.200.0.30 --+

Every host is a namespace (`ip netns`) with one veth pair to the bridge; the
addresses exist only inside those namespaces and nothing leaves the machine.
Each host has its own hostname too (a UTS namespace: Celery names a worker
after it). The test itself runs in the client namespace (setns of its own
thread), so its HTTP, database and broker connections cross the veth network
as a remote client's would.

PostgreSQL listens on the database host's loopback, behind a relay
(relay.py) on its address: the relay only forwards, unless the link is
slowed on a kernel without tc's netem (then it makes the delay).

Faults: a cut drops silently every packet between two hosts (nftables rules
in one of them, both directions); the database link is slowed by netem
delay and loss (tc) where the kernel has netem, else by the relay's delay
and nftables' random drops (real packet loss: TCP retransmits). The
namespaces, the processes and the PostgreSQL cluster are removed at the end
whatever happened.

Needs root and iproute2 (`ip netns`); skipped otherwise. Small sizes by
default, `--big` for the 30 s cuts.
"""
import atexit
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager

import pytest

from cli.processes import ROOT, procfile_command
from tests.e2e.service import FLOWER_AUTH, Service
from tests.faults.own_postgres import DB_NAME, DB_PASSWORD, DB_ROLE, OwnPostgres
from tests.faults.server_log import read_log

SUBNET = '10.200.0'
HOSTS = {'client': 100, 'db': 2, 'broker': 3, 'web1': 11, 'web2': 12,
         'worker1': 21, 'worker2': 22, 'ops': 30}
WEB_PORT, FLOWER_PORT, REDIS_PORT, DB_PORT = 8000, 5555, 6379, 5432
RELAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'relay.py')
CLONE_NEWNET = 0x40000000
SERVICE_PREFIXES = ('FLASK_', 'SQLALCHEMY_', 'CELERY_', 'WORKER_', 'TEST_DATABASE')


def _why_not():
    if os.geteuid() != 0:
        return 'the hosts tests need root (network namespaces)'
    if shutil.which('ip') is None or shutil.which('tc') is None:
        return 'the hosts tests need iproute2 (ip, tc)'
    name = f'dsprobe{os.getpid()}'
    done = subprocess.run(['ip', 'netns', 'add', name], capture_output=True, text=True)
    if done.returncode:
        return f'ip netns is not available here: {done.stderr.strip()}'
    subprocess.run(['ip', 'netns', 'del', name], capture_output=True)
    return None


def sh(*command, check=True):
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if check and done.returncode:
        raise RuntimeError(f'{" ".join(command)}: {done.stderr.strip()}')
    return done.stdout


def address(host):
    return f'{SUBNET}.{HOSTS[host]}'


class Network:
    """The namespaces and their links; `ns(host)` names a host's namespace."""

    def __init__(self):
        self.prefix = f'ds{os.getpid() % 100000}{uuid.uuid4().hex[:3]}'
        self.made = []

    def ns(self, host):
        return f'{self.prefix}-{host}'

    def create(self):
        bridge = self.ns('bridge')
        sh('ip', 'netns', 'add', bridge)
        self.made.append(bridge)
        sh('ip', '-n', bridge, 'link', 'add', 'br0', 'type', 'bridge')
        sh('ip', '-n', bridge, 'link', 'set', 'br0', 'up')
        for host in HOSTS:
            ns = self.ns(host)
            sh('ip', 'netns', 'add', ns)
            self.made.append(ns)
            port = f'v-{host}'
            sh('ip', '-n', bridge, 'link', 'add', port, 'type', 'veth',
               'peer', 'name', 'eth0', 'netns', ns)
            sh('ip', '-n', bridge, 'link', 'set', port, 'master', 'br0', 'up')
            sh('ip', '-n', ns, 'addr', 'add', f'{address(host)}/24', 'dev', 'eth0')
            sh('ip', '-n', ns, 'link', 'set', 'eth0', 'up')
            sh('ip', '-n', ns, 'link', 'set', 'lo', 'up')
        return self

    def remove(self):
        """Kill what still runs in the namespaces and delete them; never raises."""
        for ns in reversed(self.made):
            try:
                for pid in sh('ip', 'netns', 'pids', ns, check=False).split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, ValueError):
                        pass
                sh('ip', 'netns', 'del', ns, check=False)
            except Exception as error:  # noqa: BLE001 (cleanup goes on)
                print(f'hosts: removing {ns} failed: {error}', file=sys.stderr)
        self.made = []

    def pids(self, host):
        return [int(p) for p in sh('ip', 'netns', 'pids', self.ns(host), check=False).split()]

    # --- faults --------------------------------------------------------------

    def nft(self, host, *rules):
        """Add nftables rules in the host's table `faults` (made on first use)."""
        ns = self.ns(host)
        sh('ip', 'netns', 'exec', ns, 'nft', 'add', 'table', 'inet', 'faults')
        sh('ip', 'netns', 'exec', ns, 'nft', 'add', 'chain', 'inet', 'faults', 'out',
           '{ type filter hook output priority 0; }')
        sh('ip', 'netns', 'exec', ns, 'nft', 'add', 'chain', 'inet', 'faults', 'in',
           '{ type filter hook input priority 0; }')
        for chain, rule in rules:
            sh('ip', 'netns', 'exec', ns, 'nft', 'add', 'rule', 'inet', 'faults', chain, *rule)

    def clear(self, host):
        """Remove the host's faults (its nftables table, a netem qdisc)."""
        ns = self.ns(host)
        sh('ip', 'netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', 'faults', check=False)
        sh('ip', 'netns', 'exec', ns, 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root', check=False)

    def cut(self, host, peer):
        """Nothing passes between `host` and `peer` any more, either way: the
        host drops silently every packet to and from the peer (as a cable
        pulled, no error to either side)."""
        self.nft(host, ('out', ['ip', 'daddr', address(peer), 'drop']),
                 ('in', ['ip', 'saddr', address(peer), 'drop']))

    def mend(self, host):
        self.clear(host)


def netem_available():
    """Whether the kernel has tc's netem (some VMs' kernels lack it)."""
    name = f'dsnetem{os.getpid()}'
    sh('ip', 'netns', 'add', name)
    try:
        return not subprocess.run(['ip', 'netns', 'exec', name, 'tc', 'qdisc', 'add', 'dev', 'lo',
                                   'root', 'netem', 'delay', '1ms'], capture_output=True).returncode
    finally:
        sh('ip', 'netns', 'del', name, check=False)


_libc = ctypes.CDLL(None, use_errno=True)


@contextmanager
def inside(ns):
    """Run the calling thread (and the threads it starts) in namespace `ns`."""
    own = os.open('/proc/thread-self/ns/net', os.O_RDONLY)
    target = os.open(f'/var/run/netns/{ns}', os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET):
            raise OSError(ctypes.get_errno(), f'setns into {ns} failed')
        yield
    finally:
        if _libc.setns(own, CLONE_NEWNET):
            raise OSError(ctypes.get_errno(), 'setns back failed')
        os.close(own)
        os.close(target)


class HostProcess:
    """A Procfile process on a host: in its network namespace, with the
    host's own hostname (a UTS namespace of its own)."""

    def __init__(self, network, host, name, env, log_dir):
        self.name, self.host = name, host
        self.log_path = os.path.join(log_dir, f'{host}-{name}.log')
        self._log = open(self.log_path, 'ab')
        script = f'hostname {host} && exec {procfile_command(name)}'
        self.popen = subprocess.Popen(
            ['ip', 'netns', 'exec', network.ns(host), 'unshare', '--uts', '/bin/sh', '-c', script],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self):
        return read_log(self.log_path)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
            except ProcessLookupError:
                pass
        self._log.close()


class Topology(Service):
    """The hosts and their processes; a Service (an app of the same
    configuration, for the ledger) whose url is web1's."""

    def __init__(self, network, env, log_dir):
        self.network = network
        super().__init__(env, log_dir)
        self.web_urls = [f'http://{address(h)}:{WEB_PORT}' for h in ('web1', 'web2')]
        self.url = self.web_urls[0]
        self.flower_url = f'http://{address("ops")}:{FLOWER_PORT}'

    def start_on(self, host, name, **extra_env):
        env = {**self.env, **extra_env}
        if name in ('web', 'flower'):
            env['BIND_ADDRESS'] = address(host)
        self.processes[f'{host}-{name}'] = HostProcess(self.network, host, name, env,
                                                       self.log_dir)

    def slow_db(self, delay_ms, loss_percent):
        """Every packet the database host sends waits `delay_ms`; `loss_percent` are lost."""
        if self.netem:
            sh('ip', 'netns', 'exec', self.network.ns('db'), 'tc', 'qdisc', 'add', 'dev', 'eth0',
               'root', 'netem', 'delay', f'{delay_ms}ms', 'loss', f'{loss_percent}%')
            return
        assert delay_ms == self.relay_delay_ms, 'the relay delays by the time it was started with'
        os.kill(self.relay.pid, signal.SIGUSR1)
        self.network.nft('db', ('out', ['numgen', 'random', 'mod', '100', '<', str(loss_percent),
                                        'drop']))

    def mend_db(self):
        if not self.netem:
            os.kill(self.relay.pid, signal.SIGUSR2)
        self.network.clear('db')

    def stop_host(self, host, sig=signal.SIGTERM):
        for key in [k for k in self.processes if k.startswith(host + '-')]:
            self.processes.pop(key).stop(sig)

    def wait_webs(self, timeout=90):
        for url in self.web_urls:
            self.url = url
            self.wait_web(timeout)
        self.url = self.web_urls[0]

    def wait_workers(self, names=('worker1', 'worker2'), timeout=90):
        """Until a worker of each host answers a ping."""
        deadline = time.monotonic() + timeout
        wanted = {f'celery@{n}' for n in names}
        seen = set()
        while time.monotonic() < deadline:
            seen |= {name for reply in self.celery.control.ping(timeout=1) for name in reply}
            if wanted <= seen:
                return
        raise AssertionError(f'workers answering: {sorted(seen)}, wanted {sorted(wanted)}\n'
                             + self.logs())

    def logs(self, tail=3000):
        return '\n'.join(f'--- {name} ---\n{p.log()[-tail:]}' for name, p in self.processes.items())


@pytest.fixture(scope='session', autouse=True)
def fresh_schema():
    """Replaces tests/conftest.py's: the topology's tables are made in its own
    PostgreSQL (the PgBouncer test uses the test database, made by syncdb)."""
    yield


@pytest.fixture(scope='module')
def network():
    why = _why_not()
    if why:
        pytest.skip(why)
    if shutil.which('nft') is None:
        pytest.fail('the hosts tests need nftables (nft) for their network faults')
    net = Network()
    atexit.register(net.remove)
    try:
        yield net.create()
    finally:
        net.remove()
        atexit.unregister(net.remove)


def start_relay(network, pg, log_dir, delay_ms, timeout=30):
    """The relay on the database host's address, to its PostgreSQL; returned
    once it accepts connections (a Python started in a namespace may take a
    while on a busy machine)."""
    import socket
    log = open(os.path.join(log_dir, 'db-relay.log'), 'ab')
    popen = subprocess.Popen(
        ['ip', 'netns', 'exec', network.ns('db'), sys.executable, RELAY, address('db'),
         str(DB_PORT), '127.0.0.1', str(pg.port), str(delay_ms)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address('db'), DB_PORT), timeout=1):
                return popen
        except OSError:
            if popen.poll() is not None:
                break
            time.sleep(0.1)
    raise RuntimeError(f'the relay on the database host did not listen (exit {popen.poll()})')


def start_redis(network, log_dir, timeout=30):
    """redis-server on the broker host, without persistence."""
    log = open(os.path.join(log_dir, 'broker-redis.log'), 'ab')
    popen = subprocess.Popen(
        ['ip', 'netns', 'exec', network.ns('broker'), 'redis-server', '--port', str(REDIS_PORT),
         '--bind', address('broker'), '--protected-mode', 'no', '--save', '', '--appendonly',
         'no', '--dir', log_dir], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    import redis
    client = redis.Redis(host=address('broker'), port=REDIS_PORT, socket_connect_timeout=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.ping():
                return popen
        except redis.RedisError:
            time.sleep(0.1)
    raise RuntimeError('redis-server on the broker host did not answer')


@pytest.fixture(scope='module')
def topology(network, tmp_path_factory):
    """Every host running: PostgreSQL, Redis, web on web1 and web2, a worker
    on worker1 and worker2, beat and Flower on ops."""
    log_dir = str(tmp_path_factory.mktemp('hosts'))
    pg = OwnPostgres(wrap=['ip', 'netns', 'exec', network.ns('db')])
    atexit.register(pg.cleanup)
    netem = netem_available()
    redis_server = relay = topo = None
    try:
        with inside(network.ns('client')):
            pg.init()
            relay = start_relay(network, pg, log_dir, delay_ms=100)
            redis_server = start_redis(network, log_dir)
            env = {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_PREFIXES)}
            env.update({
                'PATH': os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', ''),
                'SERVICE_MODE': 'development', 'LOG_FORMAT': 'json',
                'FLASK_CONFIG_PREFIXES': 'FLASK,SQLALCHEMY,CELERY', 'FLASK_API_TOKENS': '',
                'SQLALCHEMY_DEFAULT': (f'postgresql://{DB_ROLE}:{DB_PASSWORD}@{address("db")}:'
                                       f'{DB_PORT}/{DB_NAME}'),
                'CELERY_BROKER_URL': f'redis://{address("broker")}:{REDIS_PORT}/0',
                'PORT': str(WEB_PORT), 'FLOWER_PORT': str(FLOWER_PORT),
                'FLOWER_BASIC_AUTH': FLOWER_AUTH,
                'WEB_CONCURRENCY': '1', 'WORKER_CONCURRENCY': '2',
                'SQLALCHEMY_LOCK_TIMEOUT_MS': '1000',
                'CELERY_VISIBILITY_TIMEOUT': '20',
                'WORKER_RETRY_BASE_SECONDS': '0.2', 'WORKER_RETRY_MAX_SECONDS': '2',
                # Longer than a refused publish takes (about 6 s): a job the web
                # is still publishing is not the sweep's yet.
                'WORKER_SWEEP_AGE_SECONDS': '15', 'WORKER_STALE_RUNNING_SECONDS': '5',
                'WORKER_SWEEP_EVERY_SECONDS': '1', 'WORKER_BATCH_SIZE': '10',
                'BEAT_SCHEDULE_FILE': os.path.join(log_dir, 'beat-schedule'),
            })
            topo = Topology(network, env, log_dir)
            topo.netem, topo.relay, topo.relay_delay_ms = netem, relay, 100
            with topo.app.app_context():
                topo.db.syncdb('default')
            for host in ('web1', 'web2'):
                topo.start_on(host, 'web')
            for host in ('worker1', 'worker2'):
                topo.start_on(host, 'worker')
            topo.start_on('ops', 'beat')
            topo.start_on('ops', 'flower')
            topo.postgres, topo.redis_server = pg, redis_server
            topo.wait_webs()
            topo.wait_workers()
            yield topo
    finally:
        if topo is not None:
            topo.stop_all()
            for connection in topo.db.pool.connections.values():
                connection.engine.dispose()
        for popen in (redis_server, relay):
            if popen is not None:
                popen.kill()
                popen.wait()
        pg.cleanup()
        atexit.unregister(pg.cleanup)


@pytest.fixture
def hosts(topology):
    """The topology, the test's thread in the client namespace."""
    with inside(topology.network.ns('client')):
        yield topology
