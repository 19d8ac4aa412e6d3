"""Start the Procfile's own commands as processes (for the benchmark and the
end-to-end tests), each in its own process group, logging to a file."""
import os
import signal
import subprocess

from honcho.environ import parse_procfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def procfile_command(name):
    with open(os.path.join(ROOT, 'Procfile')) as f:
        return parse_procfile(f.read()).processes[name]


def rss_bytes(pid):
    """Resident memory of a process and its children, in bytes."""
    total = 0
    for p in [pid, *children(pid)]:
        try:
            with open(f'/proc/{p}/status') as f:
                for line in f:
                    if line.startswith('VmRSS:'):
                        total += int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
    return total


def children(pid):
    try:
        with open(f'/proc/{pid}/task/{pid}/children') as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


class Process:
    """One Procfile process, in its own process group, logging to a file."""

    def __init__(self, name, env, log_dir):
        self.name = name
        self.log_path = os.path.join(log_dir, f'{name}.log')
        self._log = open(self.log_path, 'ab')
        self.popen = subprocess.Popen(['/bin/sh', '-c', 'exec ' + procfile_command(name)],
                                      cwd=ROOT, env=env, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self):
        return self.popen.pid

    def log(self):
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._log.close()
