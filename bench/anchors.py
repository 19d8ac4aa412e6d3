"""The two peers the service is measured against, each by its own run.sh:
the naive Flask + Celery stack and the procrastinate stack (a PostgreSQL-only
queue), with the CPU their processes spend on the jobs.

Each run.sh starts its stack, drives it with wrk, waits for the jobs and
prints one line; meanwhile a CpuMeter follows its processes. The window opens
when wrk starts and closes when run.sh is done (its stack idle by then): the
stack's web and worker processes (what its children gunicorn, celery or
procrastinate became), their PostgreSQL backends and, for the naive stack,
the Redis server; not wrk, curl or the script's own waiting query.
"""
import hashlib
import os
import re
import subprocess
import sys

from bench.cpu import CpuMeter, per_thousand, processes, tree, wait_for
from cli.processes import ROOT

SHARED = os.path.join(ROOT, '..', 'shared', 'anchors')
NAIVE_DIR = os.environ.get('NAIVE_STACK_DIR', os.path.join(SHARED, 'naive_stack'))
PROC_DIR = os.environ.get('PROC_STACK_DIR', os.path.join(SHARED, 'procrastinate_stack'))
PROC_VENV = os.path.join(ROOT, '.bench-venv', 'procrastinate')

# What a direct child of run.sh becomes: its group, by command name.
ROLES = {'gunicorn': 'web', 'celery': 'worker', 'procrastinate': 'worker'}


def procrastinate_python(progress):
    """The procrastinate stack's own virtual environment (its pins, not the
    service's), made or brought up to date from its requirements.txt; its bin."""
    requirements = os.path.join(PROC_DIR, 'requirements.txt')
    with open(requirements, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    stamp = os.path.join(PROC_VENV, 'requirements.sha256')
    bin_dir = os.path.join(PROC_VENV, 'bin')
    if os.path.exists(stamp) and open(stamp).read() == digest:
        return bin_dir
    progress(f'installing the procrastinate stack\'s requirements in {PROC_VENV}')
    subprocess.run([sys.executable, '-m', 'venv', PROC_VENV], check=True)
    subprocess.run([os.path.join(bin_dir, 'pip'), 'install', '-q', '-r', requirements],
                   check=True)
    with open(stamp, 'w') as f:
        f.write(digest)
    return bin_dir


class Anchor:
    """One peer stack: where its run.sh is, and the environment it runs in."""

    def __init__(self, name, directory, env, redis_pid=None):
        self.name = name
        self.directory = directory
        self.env = env
        self.redis_pid = redis_pid

    def run(self, scenario, seconds, db_url, progress):
        """Run `scenario` for `seconds`; return its JSON line (a dict)."""
        progress(f'{self.name}, {scenario}, {seconds} s')
        script = subprocess.Popen(['bash', os.path.join(self.directory, 'run.sh'), scenario,
                                   str(seconds)], env=self.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)

        def groups(table):
            found = {}
            for child in tree(script.pid, table):
                if table[child][0] == script.pid and table[child][3] in ROLES:
                    role = ROLES[table[child][3]]
                    found.update((pid, role) for pid in tree(child, table))
            if self.redis_pid:
                found[self.redis_pid] = 'redis'
            return found

        meter = CpuMeter(groups, db_url)
        try:
            def driving():
                table = processes()
                return any(table[p][3] == 'wrk' for p in tree(script.pid, table))
            started = wait_for(lambda: driving() or script.poll() is not None, timeout=120,
                               interval=0.05)
            if started and script.poll() is None:
                meter.start()
            out, err = script.communicate(timeout=seconds + 300)
            spent = meter.stop()
        finally:
            if script.poll() is None:
                script.kill()
            meter.close()
        if script.returncode != 0:
            raise RuntimeError(f'{self.name} run.sh failed: {err.strip()[-2000:]}')
        progress(out.strip())
        figures = dict(re.findall(r'(\w+)=(\d+)', out))
        applied = int(figures['applied'])
        total, by_group = per_thousand(spent, applied)
        return {'scenario': f'{self.name}.{scenario}', 'accepted': int(figures['accepted']),
                'applied': applied, 'jobs_per_s': int(figures['end_to_end_per_s']),
                'cpu_s_per_1k_jobs': total, 'cpu_s_per_1k_by_process': by_group}


def anchors(db_url, broker_url, redis_pid, progress, with_naive=True, with_procrastinate=True):
    """The naive stack and the procrastinate one, unless told not to."""
    path = os.environ['PATH']
    service_bin = os.path.dirname(sys.executable)
    found = []
    if with_naive:
        found.append(Anchor('naive', NAIVE_DIR, dict(
            os.environ, PATH=service_bin + os.pathsep + path,
            NAIVE_DB_URL=db_url.replace('postgresql://', 'postgresql+psycopg2://'),
            NAIVE_BROKER_URL=broker_url), redis_pid))
    if with_procrastinate:
        bin_dir = procrastinate_python(progress)
        found.append(Anchor('procrastinate', PROC_DIR, dict(
            os.environ, PATH=bin_dir + os.pathsep + path, PROC_DB_URL=db_url,
            VIRTUAL_ENV=PROC_VENV)))
    return found
