"""The servers of a command: the configured ones, or embedded ones of one
data folder, started and stopped together.

The folder's lock (`servers.lock`, an flock held while they run) makes a
second `manage.py run` on the same folder say so instead of starting another
pair; `servers.json` tells it who holds them and on which ports. The lock goes
with the process that holds it, so a run that was killed leaves no stale lock;
servers it left running are stopped by the next start.
"""
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from devservers.choice import embed
from devservers.postgres import EmbeddedPostgres
from devservers.redis_server import EmbeddedRedis


class AlreadyRunning(Exception):
    """Another process holds the data folder's servers."""


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Servers:
    """A context manager: the PostgreSQL and Redis a command uses for the
    duration of the block. Those of `db_url` and `broker_url` (the configured
    ones) unless `postgres` or `redis` asks for an embedded one, which runs
    with its data in `folder` while the folder's lock is held."""

    def __init__(self, folder, db_url, broker_url, postgres=False, redis=False, durable=True):
        self.folder = Path(folder).resolve()
        self.db_url, self.broker_url = db_url, broker_url
        self.postgres = EmbeddedPostgres(self.folder, durable) if postgres else None
        self.redis = EmbeddedRedis(self.folder, durable) if redis else None
        self._lock = None

    @classmethod
    def choose(cls, mode, folder, db_url, broker_url, durable=True):
        """The servers SERVICE_SERVERS `mode` asks for (devservers.choice);
        `broker_url` None: a command without Redis."""
        return cls(folder, db_url, broker_url, postgres=embed(mode, db_url),
                   redis=broker_url is not None and embed(mode, broker_url), durable=durable)

    @property
    def embedded(self):
        return bool(self.postgres or self.redis)

    def __enter__(self):
        if not self.embedded:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            if self.postgres:
                self.postgres.start(free_port())
            if self.redis:
                self.redis.start(free_port())
            self._write_info()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def database_url(self, configured=None):
        """`configured` (default: db_url) pointed at the embedded PostgreSQL, if any."""
        configured = configured or self.db_url
        return self.postgres.url(configured) if self.postgres else configured

    def redis_url(self, configured=None):
        """`configured` (default: broker_url) pointed at the embedded Redis, if any."""
        configured = configured or self.broker_url
        return self.redis.url(configured) if self.redis else configured

    @property
    def admin_url(self):
        """The embedded PostgreSQL's superuser URL (None: the machine's, as configured)."""
        return self.postgres.admin_url if self.postgres else None

    def _take_lock(self):
        fd = os.open(self.folder / 'servers.lock', os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(self._holder()) from None
        self._lock = fd

    def _holder(self):
        try:
            info = json.loads((self.folder / 'servers.json').read_text())
        except (OSError, ValueError):
            return f'the embedded servers of {self.folder} are in use by another process'
        ports = ', '.join(f'{name} on 127.0.0.1:{port}'
                          for name, port in info.get('ports', {}).items())
        return (f'the embedded servers of {self.folder} are in use by process {info.get("pid")} '
                f'({info.get("command")}): {ports}; stop it first (Ctrl-C there)')

    def _write_info(self):
        info = {'pid': os.getpid(), 'command': ' '.join(['manage.py', *sys.argv[1:]]),
                'ports': {name: server.port for name, server in
                          (('postgresql', self.postgres), ('redis', self.redis)) if server}}
        (self.folder / 'servers.json').write_text(json.dumps(info) + '\n')

    def stop(self):
        """Stop Redis, then PostgreSQL, then let the folder go."""
        try:
            if self.redis:
                self.redis.stop()
        finally:
            try:
                if self.postgres:
                    self.postgres.stop()
            finally:
                if self._lock is not None:
                    (self.folder / 'servers.json').unlink(missing_ok=True)
                    os.close(self._lock)
                    self._lock = None

    def describe(self):
        """Lines saying which servers are used, and where the embedded ones keep their data."""
        from service.logs import redact
        if self.postgres:
            postgres = (f'PostgreSQL {self.postgres.version}: embedded, on 127.0.0.1:'
                        f'{self.postgres.port}, data in {self.postgres.data}')
        else:
            postgres = f"PostgreSQL: the configured one (the machine's), {redact(self.db_url)}"
        if self.redis:
            redis = (f'Redis: embedded ({os.path.basename(self.redis.binary)}), on 127.0.0.1:'
                     f'{self.redis.port}, data in {self.redis.dir} (append-only file)')
        elif self.broker_url:
            redis = f"Redis: the configured one (the machine's), {redact(self.broker_url)}"
        else:
            return [postgres]
        return [postgres, redis]


def exit_on_sigterm():
    """From now on SIGTERM ends us through SystemExit, so the servers started
    so far are stopped on the way out (as with Ctrl-C's KeyboardInterrupt)."""
    def leave(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, leave)


def run_until_stopped(command, env=None):
    """Run `command` (honcho) as our child until it exits, and return its exit
    code. The first SIGINT, SIGTERM or SIGHUP sent to us is passed on, so the
    caller stops the servers only after every process of the service is gone.

    honcho runs in a session of its own and gets that one signal only: a
    terminal's Ctrl-C reaches our process group, and a second signal arriving
    while honcho's handler prints ("SIGINT received") crashes it on a
    reentrant write to its stdout, leaving its processes behind."""
    child = subprocess.Popen(command, env=env, start_new_session=True)
    sent = []

    def forward(signum, frame):
        if child.poll() is None and not sent:
            sent.append(signum)
            child.send_signal(signal.SIGTERM if signum == signal.SIGHUP else signum)

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, forward) for signum in handled}
    try:
        return child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
