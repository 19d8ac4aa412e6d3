"""The seed document's examples run as written (only the database URL set),
in a pytest of their own: they define the seed's models themselves."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_seed_examples_pass_as_written():
    result = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
         os.path.join(HERE, 'seed_examples')],
        cwd=os.path.dirname(HERE), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '10 passed' in result.stdout
