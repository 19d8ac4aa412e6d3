#!/usr/bin/env python3
"""The project's command line: setup, test, run, db, bench, enqueue, jobs.

Runs with the system python3: it makes the virtual environment (.venv) from
the pinned requirements when missing or stale, then runs itself inside it.
"""
import argparse
import contextlib
import hashlib
import os
import subprocess
import sys
import venv

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(ROOT, '.venv')
VENV_PYTHON = os.path.join(VENV, 'bin', 'python')
REQUIREMENTS = ['requirements.txt', 'requirements-dev.txt', 'requirements-local.txt']
STAMP = os.path.join(VENV, '.requirements.sha256')

SERVICE_DB = 'postgresql://ds:dsps@127.0.0.1:5432/ds'
TEST_DBS = ('postgresql://ds:dsps@127.0.0.1:5432/ds_test',
            'postgresql://ds:dsps@127.0.0.1:5432/ds2_test')
ADMIN_DB = 'postgresql://postgres@127.0.0.1:5432/postgres'
BROKER = 'redis://127.0.0.1:6379/0'
TEST_BROKER = 'redis://127.0.0.1:6379/12'
BENCH_DB = 'postgresql://ds:dsps@127.0.0.1:5432/ds_bench'
BENCH_BROKER = 'redis://127.0.0.1:6379/14'
# Set by the Dockerfile: the image's python3 has the requirements, and the
# environment and databases are compose's (no .venv, .env or provisioning).
IN_CONTAINER = os.environ.get('MANAGE_IN_CONTAINER') == '1'


def _requirements_digest():
    digest = hashlib.sha256()
    for name in REQUIREMENTS:
        with open(os.path.join(ROOT, name), 'rb') as f:
            digest.update(f.read())
    return digest.hexdigest()


def ensure_venv():
    """Create .venv and install the pinned requirements unless already done."""
    wanted = _requirements_digest()
    if os.path.exists(STAMP) and open(STAMP).read() == wanted:
        return
    if not os.path.exists(VENV_PYTHON):
        print('creating the virtual environment in .venv', flush=True)
        venv.create(VENV, with_pip=True)
    pip = [VENV_PYTHON, '-m', 'pip', 'install', '--quiet', '--disable-pip-version-check']
    for name in REQUIREMENTS:
        pip += ['-r', os.path.join(ROOT, name)]
    print('installing the pinned requirements', flush=True)
    subprocess.run(pip, check=True)
    with open(STAMP, 'w') as f:
        f.write(wanted)


def in_venv():
    return os.path.realpath(sys.prefix) == os.path.realpath(VENV)


def cmd_setup(args, admin_url=None, urls=None):
    """Install the requirements and create the roles and databases."""
    from pg.provision import ensure_databases
    if urls is None:
        urls = [os.environ.get('SQLALCHEMY_DEFAULT', SERVICE_DB), *TEST_DBS]
    if admin_url is None:
        from devservers.choice import answers
        admin_url = os.environ.get('PG_ADMIN_URL', ADMIN_DB)
        if servers_mode(args) != 'external' and not answers(admin_url):
            from service.logs import redact
            print(f'no PostgreSQL answers at {redact(admin_url)}: `run` and `test` start '
                  'an embedded one (SERVICE_SERVERS)')
            return
    created = ensure_databases(admin_url, urls)
    print('databases ready' + (f' (created {", ".join(created)})' if created else ''))


def servers_mode(args):
    """auto, embedded or external: --servers, else SERVICE_SERVERS (default auto)."""
    return getattr(args, 'servers', None) or os.environ.get('SERVICE_SERVERS') or 'auto'


def data_dir(*parts):
    """The folder of the embedded servers' data: SERVICE_DATA_DIR (read after
    .env), default .data; `manage.py test` uses its test/ folder."""
    return os.path.abspath(os.path.join(os.environ.get('SERVICE_DATA_DIR') or
                                        os.path.join(ROOT, '.data'), *parts))


@contextlib.contextmanager
def servers_for(args, folder, db_url, broker_url, urls, durable=True, service_db=False):
    """The PostgreSQL and Redis of a command (devservers): embedded ones
    started for the block where SERVICE_SERVERS asks for them; says which,
    and makes the roles and databases of `urls` (their names) on the PostgreSQL
    (with `service_db` on the machine's: only the service database, only when
    it does not connect already, see provision_service_db)."""
    from devservers.servers import AlreadyRunning, Servers
    try:
        servers = Servers.choose(servers_mode(args), folder, db_url, broker_url, durable)
        servers.__enter__()
    except (ValueError, AlreadyRunning, RuntimeError) as error:  # RuntimeError: a server failed
        sys.exit(f'manage.py {args.command}: {error}')
    try:
        print('\n'.join(servers.describe()), flush=True)
        if service_db and not servers.embedded:
            provision_service_db()
        else:
            cmd_setup(args, servers.admin_url, [servers.database_url(url) for url in urls])
        yield servers
    finally:
        if servers.embedded:
            print('stopping the embedded servers', flush=True)
        servers.stop()
        if servers.embedded:
            print('embedded servers stopped', flush=True)


def cmd_test(args):
    """Run the test suite (or the tests under --q) with pytest, on the machine's
    PostgreSQL and Redis when they answer, else on embedded ones."""
    db_urls = [os.environ.get('TEST_DATABASE_URL', TEST_DBS[0]),
               os.environ.get('TEST_DATABASE2_URL', TEST_DBS[1])]
    broker_url = os.environ.get('TEST_BROKER_URL', TEST_BROKER)
    os.chdir(ROOT)
    with servers_for(args, data_dir('test'), db_urls[0], broker_url, db_urls,
                     durable=False) as servers:
        env = dict(os.environ)
        if servers.embedded:
            env.update(TEST_DATABASE_URL=servers.database_url(db_urls[0]),
                       TEST_DATABASE2_URL=servers.database_url(db_urls[1]),
                       TEST_BROKER_URL=servers.redis_url(broker_url))
            if servers.admin_url:
                env['PG_ADMIN_URL'] = servers.admin_url
        return subprocess.call(
            [sys.executable, '-m', 'pytest', '-q', *([args.q] if args.q else []), *args.extra],
            env=env)  # without --q: pytest.ini's testpaths (tests, and the bench's own)


# The settings of `manage.py run` (honcho loads it into every process);
# MANAGE_ENV_FILE names another file (the tests of `run`).
ENV_FILE = os.path.abspath(os.environ.get('MANAGE_ENV_FILE') or os.path.join(ROOT, '.env'))


# The secrets .env.example leaves as change-me; .env gets fresh random ones.
SECRETS = {
    'FLASK_SECRET_KEY': lambda s: s.token_urlsafe(32),
    'FLASK_API_TOKENS': lambda s: s.token_urlsafe(24),
    'FLOWER_BASIC_AUTH': lambda s: 'admin:' + s.token_urlsafe(18),
}


def fresh_secrets(text):
    """`text` (a .env) with every change-me secret replaced by a random one,
    and the secrets it lacks added (a .env older than them)."""
    import secrets
    lines, seen = [], set()
    for line in text.splitlines():
        name, _, value = line.partition('=')
        if name in SECRETS:
            seen.add(name)
            if 'change-me' in value:
                line = f'{name}={SECRETS[name](secrets)}'
        lines.append(line)
    lines += [f'{name}={make(secrets)}' for name, make in SECRETS.items() if name not in seen]
    return '\n'.join(lines) + '\n'


def load_env_file():
    """Write .env from .env.example with fresh secrets (or give an older .env
    the secrets it lacks), then load it into os.environ (values already set
    win), as honcho does."""
    path = ENV_FILE if os.path.exists(ENV_FILE) else os.path.join(ROOT, '.env.example')
    with open(path) as f:
        text = f.read()
    if fresh_secrets(text).splitlines() != text.splitlines() or path != ENV_FILE:
        with open(ENV_FILE, 'w') as f:
            f.write(fresh_secrets(text))
        os.chmod(ENV_FILE, 0o600)
        print('wrote .env: settings of the local service, with fresh secrets (the API token '
              'in FLASK_API_TOKENS, the Flower login in FLOWER_BASIC_AUTH)')
    from honcho.environ import parse
    with open(ENV_FILE) as f:
        for key, value in parse(f.read()).items():
            os.environ.setdefault(key, value)


def _default_service_db():
    """The service database's URL: SQLALCHEMY_DEFAULT, else a platform's
    DATABASE_URL, else the local one (then set as SQLALCHEMY_DEFAULT)."""
    if not os.environ.get('DATABASE_URL'):
        os.environ.setdefault('SQLALCHEMY_DEFAULT', SERVICE_DB)
    from service import settings
    return settings.load()['SQLALCHEMY_DEFAULT']


def _masked(url):
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)


def provision_service_db():
    """Make sure the service database, and only it, exists (run, db): nothing
    to do when its URL connects (a managed database); else the admin role of
    PG_ADMIN_URL creates its role and database (an existing role's password is
    kept); when that fails, stop saying what to create or set."""
    import psycopg
    from service import settings
    from pg.provision import can_connect, ensure_databases
    from sqlalchemy.engine import make_url
    _default_service_db()
    url = settings.load()['SQLALCHEMY_DEFAULT']
    if can_connect(url):
        print(f'database ready: {_masked(url)} connects (nothing to provision)')
        return
    admin = os.environ.get('PG_ADMIN_URL', ADMIN_DB)
    try:
        created = ensure_databases(admin, [url], reset_password=False)
    except psycopg.Error as error:
        target = make_url(url)
        sys.exit(f'cannot provision the service database: {_masked(url)} does not connect, and '
                 f'the admin role of PG_ADMIN_URL ({_masked(admin)}) could not create it: '
                 f'{str(error).strip()}. Create the role {target.username} (with the URL\'s '
                 f'password) and the database {target.database} owned by it, or set PG_ADMIN_URL '
                 'to an admin role (postgresql://<role>:<password>@<host>:<port>/postgres).')
    print(f'database ready: {_masked(url)}' + (' (created)' if created else ''))


def _service_db():
    _default_service_db()
    from service import create_app
    from service.errors import ConfigError
    try:
        app = create_app()
    except ConfigError as error:  # unsafe, unknown or invalid settings: the message names them
        sys.exit(str(error))
    return app, app.extensions['pg']


def db_upgrade(revision='head', url=None, own_logging=False):
    """Migrate the service database (SQLALCHEMY_DEFAULT, or `url`) with alembic.
    With `own_logging`, alembic's lines go through the process's logging
    (LOG_FORMAT) rather than alembic.ini's, without its plugin set-up lines."""
    import logging
    if own_logging:  # before alembic's import, which sets its plugins up
        logging.getLogger('alembic.runtime.plugins').setLevel(logging.WARNING)

    from alembic import command
    from alembic.config import Config
    _default_service_db()
    config = Config(os.path.join(ROOT, 'alembic.ini'))
    if url:
        config.attributes['url'] = url
    if own_logging:
        config.attributes['configure_logger'] = False
    command.upgrade(config, revision)


def prepare_database(app, db):
    """Bring the service database to the models' schema: migrated with alembic
    when it is empty or already migrated; one made earlier by syncdb (no
    alembic_version table) is synced again, with a word on adopting migrations.
    Returns 'migrated' or 'synced'."""
    from sqlalchemy import inspect
    engine = db.pool.connection().engine
    tables = inspect(engine).get_table_names()
    if not tables or 'alembic_version' in tables:
        db_upgrade(url=engine.url.render_as_string(hide_password=False), own_logging=True)
        return 'migrated'
    print('this database was made by `db sync`: its tables are kept in step with the models '
          'by syncdb; to migrate it instead, once: '
          '`SQLALCHEMY_DEFAULT=<its url> .venv/bin/alembic stamp head`')
    with app.app_context():
        db.syncdb()
    return 'synced'


def cmd_db(args):
    """Create (sync), empty (clean) or migrate to the newest revision (upgrade)
    the tables of the service database."""
    if IN_CONTAINER:  # compose's database, as configured
        return db_action(args.action)
    load_env_file()
    db_url = _default_service_db()
    # The embedded PostgreSQL of `run` (not while a run holds it) where there is no other.
    with servers_for(args, data_dir(), db_url, None, [db_url], service_db=True) as servers:
        os.environ['SQLALCHEMY_DEFAULT'] = servers.database_url()
        db_action(args.action)


def db_action(action):
    if action == 'upgrade':
        db_upgrade()
        print('db upgrade: done')
        return
    app, db = _service_db()
    with app.app_context():
        getattr(db, f'{action}db')()
    print(f'db {action}: done')


def readable_logs(environ, stream):
    """At a terminal, the processes log plain text lines, unless LOG_FORMAT
    (environment or .env) says otherwise; deployments keep JSON, the default."""
    if 'LOG_FORMAT' not in environ and stream.isatty():
        environ['LOG_FORMAT'] = 'text'


def cmd_run(args):
    """Start the whole service (web, worker, beat, flower) with honcho, on the
    configured PostgreSQL and Redis, or on embedded ones when nothing answers
    at the local defaults (SERVICE_SERVERS, --servers)."""
    from devservers.servers import exit_on_sigterm, run_until_stopped
    load_env_file()
    readable_logs(os.environ, sys.stdout)
    db_url = _default_service_db()
    from service import settings
    broker_url = settings.load()['CELERY_BROKER_URL']  # CELERY_BROKER_URL, REDIS_URL or the default
    exit_on_sigterm()  # embedded servers started so far are stopped on the way out
    os.chdir(ROOT)
    with servers_for(args, data_dir(), db_url, broker_url, [db_url], service_db=True) as servers:
        os.environ.update({'SQLALCHEMY_DEFAULT': servers.database_url(),
                           'CELERY_BROKER_URL': servers.redis_url()})
        prepare_database(*_service_db())
        bin_dir = os.path.dirname(sys.executable)
        os.environ['PATH'] = bin_dir + os.pathsep + os.environ.get('PATH', '')
        # The environment holds .env already, under what was set (load_env_file),
        # and the servers' URLs: honcho reading .env again would put its values
        # over them. honcho is our child: the servers stop once it has stopped
        # every process.
        return run_until_stopped([os.path.join(bin_dir, 'honcho'), 'start', '-f', 'Procfile',
                                  '-e', os.devnull, *args.processes])


def cmd_bench(args):
    """Benchmark the service against the naive and procrastinate stacks (needs wrk)."""
    import shutil
    if {'-h', '--help'} & set(args.extra):
        from bench.run import main
        return main(['--help'])
    # The benchmark's service has an open API and no secrets of its own.
    os.environ.setdefault('SERVICE_MODE', 'development')
    if not shutil.which('wrk'):
        sys.exit('the benchmark needs wrk: apt-get install wrk')
    db_url = os.environ.get('BENCH_DATABASE_URL', BENCH_DB)
    broker_url = os.environ.get('BENCH_BROKER_URL', BENCH_BROKER)
    with servers_for(args, data_dir('bench'), db_url, broker_url, [db_url]) as servers:
        os.environ['BENCH_DATABASE_URL'] = servers.database_url()
        if servers.admin_url:  # the history scenario's CHECKPOINT
            os.environ.setdefault('PG_ADMIN_URL', servers.admin_url)
        # Else the bench starts a Redis of its own, whose CPU is the service's alone.
        if servers.embedded or 'BENCH_BROKER_URL' in os.environ:
            os.environ['BENCH_BROKER_URL'] = servers.redis_url()
        from bench.run import main
        return main(args.extra)


def cmd_enqueue(args):
    """Post the jobs of a JSON Lines file to the running service, in batches."""
    from cli.commands import enqueue
    return enqueue(args, ENV_FILE)


def cmd_jobs(args):
    """List, show or retry jobs of the running service (prints JSON)."""
    from cli.commands import jobs
    return jobs(args, ENV_FILE)


SERVERS_HELP = ('PostgreSQL and Redis: auto (default, or SERVICE_SERVERS): the configured ones, '
                'embedded ones where nothing answers at the local defaults; embedded; external')


def parser():
    from cli.commands import add_enqueue_arguments, add_jobs_arguments
    from devservers.choice import MODES as SERVER_MODES
    p = argparse.ArgumentParser(prog='manage.py', description=__doc__)
    sub = p.add_subparsers(dest='command', required=True)
    s = sub.add_parser('setup', help=cmd_setup.__doc__)
    s.set_defaults(func=cmd_setup)
    t = sub.add_parser('test', help=cmd_test.__doc__,
                       epilog='Other arguments are passed on to pytest.')
    t.add_argument('--q', metavar='PATH', help='a test file, folder or node id (default: tests)')
    t.add_argument('--servers', choices=SERVER_MODES, help=SERVERS_HELP)
    t.set_defaults(func=cmd_test)
    r = sub.add_parser('run', help=cmd_run.__doc__)
    r.add_argument('processes', nargs='*', help='only these Procfile processes (default: all)')
    r.add_argument('--servers', choices=SERVER_MODES, help=SERVERS_HELP)
    r.set_defaults(func=cmd_run)
    b = sub.add_parser('bench', help=cmd_bench.__doc__, add_help=False,
                       epilog='Options: --seconds N, --scenarios a,b, --no-naive, '
                              '--no-procrastinate, --scheduled-jobs N, --scheduled-rate N')
    b.add_argument('--servers', choices=SERVER_MODES, help=SERVERS_HELP)
    b.set_defaults(func=cmd_bench)
    d = sub.add_parser('db', help=cmd_db.__doc__)
    d.add_argument('action', choices=['sync', 'clean', 'upgrade'])
    d.add_argument('--servers', choices=SERVER_MODES, help=SERVERS_HELP)
    d.set_defaults(func=cmd_db)
    e = sub.add_parser('enqueue', help=cmd_enqueue.__doc__, description=cmd_enqueue.__doc__,
                       epilog='Exit code: 0 all accepted, 1 some lines refused, 2 some not sent.')
    add_enqueue_arguments(e)
    e.set_defaults(func=cmd_enqueue)
    j = sub.add_parser('jobs', help=cmd_jobs.__doc__, description=cmd_jobs.__doc__)
    add_jobs_arguments(j)
    j.set_defaults(func=cmd_jobs)
    return p


def parse(argv):
    """Parse the command line; only `test` takes unknown arguments (for pytest)."""
    p = parser()
    args, extra = p.parse_known_args(argv)
    if extra and args.command not in ('test', 'bench'):
        p.error(f'unrecognized arguments: {" ".join(extra)}')
    args.extra = extra
    return args


def main(argv):
    args = parse(argv)
    if not in_venv() and not IN_CONTAINER:
        ensure_venv()
        os.execv(VENV_PYTHON, [VENV_PYTHON, os.path.abspath(__file__), *argv])
    sys.path.insert(0, ROOT)
    return args.func(args) or 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
