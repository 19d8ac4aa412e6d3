"""`manage.py run` provisions the service database only, through an admin
role that has a password (PG_ADMIN_URL), skips provisioning when the
database connects already, and says what to do when it cannot provision.

Each test makes roles and a database of its own and drops them after."""
import os
import secrets
import signal
import subprocess
import sys
import time

import psycopg
import pytest
import requests
from psycopg import sql

from tests.e2e.service import free_port
from tests.settings import BROKER_URL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADMIN = 'postgresql://postgres@127.0.0.1:5432/postgres'


def admin_execute(statement, *names):
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(*map(sql.Identifier, names)))


@pytest.fixture
def roles():
    """A password-protected admin role (CREATEDB, CREATEROLE, not a superuser:
    as a managed platform gives), and the names of a service role and
    database that do not exist yet."""
    suffix = secrets.token_hex(4)
    made = {'admin': f'h17_admin_{suffix}', 'admin_password': 'adm-' + secrets.token_hex(8),
            'role': f'h17_svc_{suffix}', 'password': 'svc-' + secrets.token_hex(8),
            'db': f'h17_run_{suffix}'}
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL('CREATE ROLE {} LOGIN CREATEDB CREATEROLE PASSWORD {}').format(
            sql.Identifier(made['admin']), sql.Literal(made['admin_password'])))
    yield made
    admin_execute('DROP DATABASE IF EXISTS {} WITH (FORCE)', made['db'])
    admin_execute('DROP ROLE IF EXISTS {}', made['role'])
    admin_execute('DROP ROLE IF EXISTS {}', made['admin'])


def manage_env(roles, admin_url=None, **extra):
    env = dict(os.environ)
    for name in list(env):  # the test run's own settings stay out
        if name.startswith(('SQLALCHEMY_', 'CELERY_', 'WORKER_', 'FLASK_', 'DATABASE_URL')):
            del env[name]
    env.update({
        'SQLALCHEMY_DEFAULT': f'postgresql://{roles["role"]}:{roles["password"]}'
                              f'@127.0.0.1:5432/{roles["db"]}',
        'PG_ADMIN_URL': admin_url or (f'postgresql://{roles["admin"]}:{roles["admin_password"]}'
                                      '@127.0.0.1:5432/postgres'),
        'CELERY_BROKER_URL': BROKER_URL,
        'SERVICE_MODE': 'development', 'FLASK_API_TOKENS': '',
        'PORT': str(free_port()), 'FLOWER_PORT': str(free_port()),
        **extra,
    })
    return env


def database_owner(name):
    with psycopg.connect(ADMIN) as conn:
        row = conn.execute('SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s',
                           (name,)).fetchone()
    return row and row[0]


def test_run_provisions_the_service_database_through_a_password_admin(roles, tmp_path):
    env = manage_env(roles)
    log = open(tmp_path / 'run.log', 'w+')
    run = subprocess.Popen([sys.executable, 'manage.py', 'run', 'web'], cwd=ROOT, env=env,
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, up = time.monotonic() + 90, False
        while time.monotonic() < deadline and run.poll() is None and not up:
            try:
                up = requests.get(f'http://127.0.0.1:{env["PORT"]}/health', timeout=2).ok
            except requests.RequestException:
                time.sleep(0.3)
        log.seek(0)
        output = log.read()
        assert up, output
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGTERM)
        run.wait(30)
    assert database_owner(roles['db']) == roles['role']
    assert f'database ready: postgresql://{roles["role"]}:***@127.0.0.1:5432/{roles["db"]} (created)' in output
    # Only the service database: the test databases are not provisioned by run.
    assert 'ds_test' not in output and 'databases ready' not in output
    assert roles['admin_password'] not in output and roles['password'] not in output
    # Migrated: the ledger's table is there.
    with psycopg.connect(env['SQLALCHEMY_DEFAULT']) as conn:
        assert conn.execute("SELECT to_regclass('jobs') IS NOT NULL").fetchone()[0]


def manage_db_upgrade(env):
    return subprocess.run([sys.executable, 'manage.py', 'db', 'upgrade'], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_an_existing_database_is_not_provisioned_again(roles):
    admin_execute('CREATE ROLE {} LOGIN', roles['role'])
    admin_execute('CREATE DATABASE {} OWNER {}', roles['db'], roles['role'])
    # No admin role reachable (a managed database): nothing is asked of it.
    env = manage_env(roles, admin_url='postgresql://nobody:x@127.0.0.1:1/postgres')
    result = manage_db_upgrade(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'connects (nothing to provision)' in result.stdout


def test_what_to_do_when_it_cannot_provision(roles):
    # An admin role without the right to create databases.
    admin_execute('ALTER ROLE {} NOCREATEDB', roles['admin'])
    result = manage_db_upgrade(manage_env(roles))
    assert result.returncode != 0
    assert 'cannot provision the service database' in result.stderr
    assert f'Create the role {roles["role"]}' in result.stderr and roles['db'] in result.stderr
    assert 'PG_ADMIN_URL' in result.stderr and roles['admin_password'] not in result.stderr


def test_run_at_a_terminal_logs_readable_lines_without_alembic_noise(roles):
    """stdout a terminal (a pty) and no LOG_FORMAT: text lines, alembic's
    through the same logging, no plugin set-up lines, no JSON."""
    import pty
    import select
    env = manage_env(roles)
    env.pop('LOG_FORMAT', None)
    main, terminal = pty.openpty()
    run = subprocess.Popen([sys.executable, 'manage.py', 'run', 'web'], cwd=ROOT, env=env,
                           stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal,
                           start_new_session=True)
    os.close(terminal)
    output = b''
    try:
        deadline, up = time.monotonic() + 90, False
        while time.monotonic() < deadline and run.poll() is None and not up:
            if select.select([main], [], [], 0.3)[0]:
                try:
                    output += os.read(main, 65536)
                except OSError:
                    break
            try:
                up = requests.get(f'http://127.0.0.1:{env["PORT"]}/health', timeout=2).ok
            except requests.RequestException:
                pass
        time.sleep(1)
        while select.select([main], [], [], 0.3)[0]:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        assert up, output.decode(errors='replace')
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGTERM)
        run.wait(30)
        os.close(main)
    text = output.decode(errors='replace')
    lines = [line for line in text.splitlines() if line.strip()]
    assert any('Running upgrade' in line and 'alembic.runtime.migration' in line
               for line in lines), text
    assert 'setup plugin' not in text and 'INFO  [alembic' not in text, text
    # honcho's prefix, then the line: none of them a JSON object.
    assert not [line for line in lines if line.split('| ', 1)[-1].lstrip().startswith('{')], text
    assert any('web.1' in line and 'gunicorn' in line.lower() for line in lines), text
