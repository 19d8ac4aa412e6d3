import os
import subprocess
import sys

import manage

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_seed_test_command_forms_parse():
    args = manage.parse(['test', '--q', 'tests/unit/test_settings.py::x', '-x'])
    assert args.q == 'tests/unit/test_settings.py::x' and args.extra == ['-x']
    assert manage.parse(['test']).q is None


def test_manage_test_runs_one_test():
    node = 'tests/unit/test_settings.py::test_every_setting_is_documented'
    result = subprocess.run([sys.executable, 'manage.py', 'test', '--q', node],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '1 passed' in result.stdout
    # The machine's servers when they answer (auto): CI tests against them.
    from devservers.choice import answers
    if answers(os.environ.get('TEST_DATABASE_URL', manage.TEST_DBS[0])):
        assert "PostgreSQL: the configured one (the machine's)" in result.stdout
    if answers(os.environ.get('TEST_BROKER_URL', manage.TEST_BROKER)):
        assert "Redis: the configured one (the machine's)" in result.stdout
