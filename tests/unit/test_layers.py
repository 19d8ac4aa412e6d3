"""The layering of ARCHITECTURE.md: `lint-imports` checks the contracts of
.importlinter, and the Celery entry (worker, beat, Flower) starts without
loading the web front."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def test_the_import_contracts_are_kept():
    run = subprocess.run([os.path.join(BIN, 'lint-imports'), '--no-cache'], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert 'Contracts: 4 kept, 0 broken.' in run.stdout


def test_the_celery_entry_does_not_import_the_web_front():
    probe = ('import sys, worker.main; '
             'print(sorted(m for m in sys.modules if m == "web" or m.startswith("web.")))')
    env = dict(os.environ, SERVICE_MODE='development',
               SQLALCHEMY_DEFAULT='postgresql://ds:dsps@127.0.0.1:5432/ds_test')
    run = subprocess.run([sys.executable, '-c', probe], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == '[]'
