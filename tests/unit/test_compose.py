"""compose/docker-compose.yml runs what the Procfile runs, in order, with no
secret written in it. With docker-compose installed, compose itself checks
the file against compose/.env.example."""
import os
import re
import shlex
import shutil
import subprocess

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPOSE = os.path.join(ROOT, 'compose', 'docker-compose.yml')
ENV_EXAMPLE = os.path.join(ROOT, 'compose', '.env.example')
PROCESSES = ('web', 'worker', 'beat', 'flower')
SECRET_NAME = re.compile(r'PASSWORD|SECRET|TOKEN|AUTH', re.I)


def compose_text():
    with open(COMPOSE) as f:
        return f.read()


def services():
    return yaml.safe_load(compose_text())['services']


def procfile():
    with open(os.path.join(ROOT, 'Procfile')) as f:
        return dict(line.split(':', 1) for line in f.read().splitlines() if line.strip())


def normalised(command):
    if isinstance(command, list):
        command = shlex.join(command)
    return ' '.join(command.split())


def example_env():
    with open(ENV_EXAMPLE) as f:
        lines = [line.strip() for line in f if line.strip() and not line.startswith('#')]
    return dict(line.split('=', 1) for line in lines)


@pytest.mark.parametrize('name', PROCESSES)
def test_each_process_runs_its_procfile_command(name):
    assert normalised(services()[name]['command']) == normalised(procfile()[name])


def test_migrate_runs_the_upgrade_once():
    migrate = services()['migrate']
    assert normalised(migrate['command']) == 'python3 manage.py db upgrade'
    assert migrate['restart'] == 'no'
    assert migrate['depends_on'] == {'pgdb': {'condition': 'service_healthy'}}


@pytest.mark.parametrize('name', PROCESSES)
def test_processes_start_on_a_ready_and_migrated_database(name):
    assert services()[name]['depends_on'] == {
        'pgdb': {'condition': 'service_healthy'},
        'redis': {'condition': 'service_healthy'},
        'migrate': {'condition': 'service_completed_successfully'},
    }


def test_healthchecks():
    found = services()
    checks = {name: ' '.join(found[name]['healthcheck']['test'])
              for name in ('pgdb', 'redis', 'web', 'worker', 'flower')}
    assert 'pg_isready' in checks['pgdb']
    assert 'redis-cli ping' in checks['redis']
    assert "'http://127.0.0.1:${PORT:-8000}/health'" in checks['web']
    assert 'inspect ping' in checks['worker']
    assert '/healthcheck' in checks['flower']


def test_redis_has_a_password_and_an_append_only_file():
    redis = services()['redis']
    command = normalised(redis['command'])
    assert '--appendonly yes' in command
    assert re.search(r'--requirepass \$\{REDIS_PASSWORD[:?}]', command), command
    # The app reaches it with the password in its URLs.
    for name in ('migrate', *PROCESSES):
        url = services()[name]['environment']['CELERY_BROKER_URL']
        assert url.startswith('redis://:${REDIS_PASSWORD') and url.endswith('@redis:6379/0')


def test_secrets_come_from_the_env_file():
    text = compose_text()
    found = services()
    for name in ('pgdb', 'migrate', *PROCESSES):
        assert found[name]['env_file'] == '${DS_ENV_FILE:-.env}'
    # No example value, and every secret-looking setting a ${...} reference.
    examples = {v for k, v in example_env().items() if SECRET_NAME.search(k)}
    for value in examples:
        assert value.split(':')[-1] not in text
    for name, service in found.items():
        for key, value in (service.get('environment') or {}).items():
            if SECRET_NAME.search(key):
                assert str(value).startswith('${'), f'{name}.{key} is written literally'
    # Passwords in URLs and on command lines are references too.
    for password in re.findall(r'://[^/\s:@]*:([^@\s]+)@', text):
        assert password.startswith('${'), password
    for password in re.findall(r'(?:--requirepass\s+|--basic-auth[=\s]|(?<!\S)-a\s+)(\S+)', text):
        assert password.startswith('${'), password


def test_no_command_carries_a_secret():
    """A command line is visible to every local user (ps): secrets travel in
    the environment, which Flower (FLOWER_BASIC_AUTH) reads itself."""
    commands = list(procfile().values()) + [normalised(services()[name]['command'])
                                            for name in PROCESSES]
    for command in commands:
        assert '--basic-auth' not in command and 'FLOWER_BASIC_AUTH' not in command, command
        assert not re.search(r'\$\{?\w*(PASSWORD|SECRET|TOKEN|AUTH)', command), command


def test_the_real_env_file_is_git_ignored():
    if not (shutil.which('git') and os.path.isdir(os.path.join(ROOT, '.git'))):
        pytest.skip('not a git work tree')
    ignored = subprocess.run(['git', 'check-ignore', '-q', 'compose/.env'], cwd=ROOT)
    assert ignored.returncode == 0
    tracked = subprocess.run(['git', 'ls-files', '--error-unmatch', 'compose/.env'],
                             cwd=ROOT, capture_output=True)
    assert tracked.returncode != 0


def docker_compose_config(env_file):
    env = {k: v for k, v in os.environ.items() if k not in example_env()}
    env['DS_ENV_FILE'] = env_file
    return subprocess.run(
        ['docker-compose', '-f', COMPOSE, '--env-file', env_file, 'config', '-q'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not shutil.which('docker-compose'), reason='docker-compose is not installed')
def test_docker_compose_accepts_the_file_with_the_example_env(tmp_path):
    result = docker_compose_config(ENV_EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr
    # A missing secret stops compose before anything starts.
    partial = tmp_path / 'partial.env'
    partial.write_text(''.join(f'{k}={v}\n' for k, v in example_env().items()
                               if k != 'REDIS_PASSWORD'))
    result = docker_compose_config(str(partial))
    assert result.returncode != 0 and 'REDIS_PASSWORD' in result.stderr


# Graceful shutdown: docker stops a service with SIGTERM, then SIGKILL once its
# stop_grace_period is over; each period covers that process's own shutdown.

def seconds(duration):
    """A compose duration (40s, 1m30s, 90) in seconds."""
    parts = re.fullmatch(r'(?:(\d+)m)?(?:(\d+)s?)?', str(duration))
    assert parts and any(parts.groups()), duration
    return int(parts.group(1) or 0) * 60 + int(parts.group(2) or 0)


def gunicorn_graceful_timeout():
    import runpy
    return runpy.run_path(os.path.join(ROOT, 'gunicorn.conf.py'))['graceful_timeout']


def test_every_process_has_a_stop_grace_period():
    for name in PROCESSES:
        assert seconds(services()[name]['stop_grace_period']) >= 10


def test_web_outlasts_gunicorns_graceful_timeout():
    # gunicorn gives requests in flight graceful_timeout, then stops its workers.
    assert seconds(services()['web']['stop_grace_period']) >= gunicorn_graceful_timeout() + 5


def test_the_worker_outlasts_its_warm_shutdown():
    from service import settings
    found = services()['worker']
    grace = seconds(found['stop_grace_period'])
    # Warm shutdown finishes the groups in hand: their lock waits, each capped by
    # SQLALCHEMY_LOCK_TIMEOUT_MS, and the hard time limit when one is set.
    lock_wait = settings.SETTINGS['SQLALCHEMY_LOCK_TIMEOUT_MS'].default / 1000
    assert grace >= 10 * lock_wait
    limit = (found.get('environment') or {}).get('CELERY_TASK_TIME_LIMIT')
    if limit is not None:
        assert grace > float(limit)
    assert grace >= seconds(services()['web']['stop_grace_period'])


def dockerfile_cmd():
    import json
    with open(os.path.join(ROOT, 'Dockerfile')) as f:
        lines = [line for line in f if line.startswith('CMD ')]
    assert len(lines) == 1, 'the image has one default command'
    return json.loads(lines[0][len('CMD '):])


def test_the_image_runs_the_web_front_by_default_as_pid_1():
    cmd = dockerfile_cmd()
    assert cmd[:2] == ['/bin/sh', '-c'] and cmd[2].startswith('exec ')
    assert normalised(cmd[2][len('exec '):]) == normalised(procfile()['web'])
    with open(os.path.join(ROOT, 'Dockerfile')) as f:
        assert 'ENV BIND_ADDRESS=0.0.0.0' in f.read()
