"""`python3 manage.py bench`: the service against the naive stack, in one run.

Each scenario starts from empty tables, drives the service over HTTP with
wrk, waits until every accepted job is applied, and prints one JSON line.
The naive stack (../shared/anchors/naive_stack/run.sh) runs in the same
invocation, alone on the machine, for the ratios. Progress goes to stderr.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import redis
from sqlalchemy import create_engine, text

import ledger

from cli.processes import ROOT, Process, rss_bytes

DB_URL = os.environ.get('BENCH_DATABASE_URL', 'postgresql://ds:dsps@127.0.0.1:5432/ds_bench')
BROKER_URL = os.environ.get('BENCH_BROKER_URL', 'redis://127.0.0.1:6379/14')
NAIVE_DIR = os.environ.get('NAIVE_STACK_DIR',
                           os.path.join(ROOT, '..', 'shared', 'anchors', 'naive_stack'))
PORT = int(os.environ.get('BENCH_PORT', '8741'))
SCENARIOS = ('single', 'batch', 'hot_row', 'latency', 'memory')
OTHER_SCENARIOS = ('history', 'index_cost')  # run when named
BATCH = 500
DAY = 86400

# `rows` finished jobs spread over the last 30 days, oldest first (ids grow
# with time, as they do), one in 20 failed, three kinds; counted in job_counts.
FILL_HISTORY = '''
INSERT INTO jobs (kind, payload, status, attempts, result, error, finished_at, created_at, updated_at)
SELECT (ARRAY['genre.create', 'user.credit', 'artist.create'])[1 + i % 3],
       '{"name": "old", "description": "history"}',
       CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'succeeded' END, 1,
       CASE WHEN i % 20 = 0 THEN NULL ELSE '{"id": 1}'::jsonb END,
       CASE WHEN i % 20 = 0 THEN 'no such genre' END,
       t + interval '20 ms', t, t + interval '20 ms'
FROM generate_series(:first, :last) AS i,
     LATERAL (SELECT now() - interval '30 days' + i * interval '30 days' / :rows AS t) AS at
'''


def progress(message):
    print(f'[bench {time.strftime("%H:%M:%S")}] {message}', file=sys.stderr, flush=True)


def naive(scenario, seconds):
    """Run the naive stack's own script; return its end-to-end jobs/s."""
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
               NAIVE_DB_URL=DB_URL.replace('postgresql://', 'postgresql+psycopg2://'))
    progress(f'naive stack, {scenario}, {seconds} s')
    out = subprocess.run(['bash', os.path.join(NAIVE_DIR, 'run.sh'), scenario, str(seconds)],
                         env=env, capture_output=True, text=True, check=True).stdout
    progress(out.strip())
    return float(re.search(r'end_to_end_per_s=(\d+)', out).group(1))


def wrk_get(url, seconds, connections=4):
    """GET `url` for `seconds`; return (requests, p50 ms, p99 ms, non-2xx)."""
    out = subprocess.run(['wrk', '-t1', f'-c{connections}', f'-d{seconds}s', '--latency', url],
                         capture_output=True, text=True, check=True).stdout

    def ms(percent):
        value, unit = re.search(rf'^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$', out, re.M).groups()
        return round(float(value) * {'us': 0.001, 'ms': 1, 's': 1000}[unit], 2)
    failed = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
    return (int(re.search(r'(\d+) requests in', out).group(1)), ms(50), ms(99),
            int(failed.group(1)) if failed else 0)


def wrk(url, body, seconds, connections=16, delay_ms=None):
    """POST `body` to `url` for `seconds`; return the number of 2xx answers."""
    lua = ['wrk.method = "POST"', f'wrk.body = {json.dumps(body)}',
           'wrk.headers["Content-Type"] = "application/json"']
    if delay_ms:
        lua.append(f'function delay() return {delay_ms} end')
    with tempfile.NamedTemporaryFile('w', suffix='.lua') as script:
        script.write('\n'.join(lua) + '\n')
        script.flush()
        out = subprocess.run(['wrk', '-t1', f'-c{connections}', f'-d{seconds}s', '-s', script.name,
                              url], capture_output=True, text=True, check=True).stdout
    total = int(re.search(r'(\d+) requests in', out).group(1))
    failed = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
    return total - (int(failed.group(1)) if failed else 0)


class Bench:
    def __init__(self, seconds, log_dir, history_rows=10_000_000):
        self.seconds = seconds
        self.history_rows = history_rows
        self.log_dir = log_dir
        self.url = f'http://127.0.0.1:{PORT}'
        self.engine = create_engine(DB_URL)
        self.env = dict(os.environ, **{
            'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
            'FLASK_CONFIG_PREFIXES': 'FLASK,SQLALCHEMY,CELERY',
            'SQLALCHEMY_DEFAULT': DB_URL, 'CELERY_BROKER_URL': BROKER_URL, 'PORT': str(PORT),
            'FLASK_API_TOKENS': '',
            'WORKER_CONCURRENCY': os.environ.get('WORKER_CONCURRENCY', '2'),
        })
        self.processes = {}

    def sql(self, statement, **params):
        with self.engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return result.fetchall() if result.returns_rows else None

    def ledger(self, read):
        """`read(conn)`, one of the ledger's reads, on a connection of its own."""
        with self.engine.begin() as conn:
            return read(conn)

    def start(self):
        from service import create_app
        self.app = create_app(config={'SQLALCHEMY_DEFAULT': DB_URL,
                                      'CELERY_BROKER_URL': BROKER_URL})
        with self.app.app_context():
            self.app.extensions['pg'].dropdb()
            self.app.extensions['pg'].syncdb()
        redis.Redis.from_url(BROKER_URL).flushdb()
        for name in ('web', 'worker'):
            self.processes[name] = Process(name, self.env, self.log_dir)
        self._wait_up()

    def _wait_up(self, timeout=60):
        import requests
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + '/health', timeout=2).status_code == 200:
                    if self.sql('SELECT 1'):
                        time.sleep(2)  # the worker's pool
                        return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError('the service did not come up; see ' + self.log_dir)

    def stop(self):
        for process in self.processes.values():
            process.stop()

    def reset(self):
        with self.app.app_context():
            self.app.extensions['pg'].cleandb()

    def wait_applied(self, accepted, timeout=300):
        """Wait until `accepted` jobs are finished; return the time it happened."""
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            # The unfinished jobs, where counting the finished ones would scan
            # the whole ledger each time.
            unfinished = self.ledger(ledger.unfinished_count)
            done = accepted - unfinished
            if unfinished == 0:
                return time.monotonic()
            if done != last:
                progress(f'  applied {done}/{accepted}')
                last = done
            time.sleep(0.25)
        raise RuntimeError(f'only {last} of {accepted} jobs applied in {timeout} s')

    def figures(self, scenario, accepted, started, finished):
        applied, p50, p99 = self.ledger(ledger.succeeded_durations)
        return {'scenario': scenario, 'accepted': accepted, 'applied': applied,
                'jobs_per_s': round(applied / (finished - started)),
                'p50_ms': round(p50.total_seconds() * 1000, 1) if p50 else None,
                'p99_ms': round(p99.total_seconds() * 1000, 1) if p99 else None}

    def drive(self, scenario, path, body, **wrk_options):
        self.reset()
        progress(f'{scenario}: wrk {self.seconds} s on {path}')
        started = time.monotonic()
        wrk(self.url + path, body, self.seconds, **wrk_options)
        accepted = self.recorded()
        return self.figures(scenario, accepted, started, self.wait_applied(accepted))

    def recorded(self):
        """Jobs the service accepted: the ledger's rows once wrk is done (wrk
        does not count the answers still in flight when it stops)."""
        time.sleep(0.5)
        return self.ledger(ledger.total_count)

    def single(self):
        return self.drive('single', '/jobs/genre.create', '{"name":"rock","description":"yeah"}')

    def batch(self):
        items = ','.join('{"name":"rock","description":"yeah"}' for _ in range(BATCH))
        return self.drive('batch', '/jobs/genre.create/batch', f'[{items}]', connections=4)

    def hot_row(self):
        self.reset()
        self.sql("INSERT INTO users (username, email, is_active, credit_score) VALUES ('hot', 'h@x.io', false, 0)")
        progress(f'hot_row: wrk {self.seconds} s on /jobs/user.credit')
        started = time.monotonic()
        wrk(self.url + '/jobs/user.credit', '{"user_id":1,"amount":1}', self.seconds)
        accepted = self.recorded()
        result = self.figures('hot_row', accepted, started, self.wait_applied(accepted))
        credit = self.sql('SELECT credit_score FROM users WHERE id = 1')[0][0]
        result['exact_sum'] = credit == accepted
        return result

    def latency(self, rate):
        """Offer `rate` jobs/s: wrk waits `delay` after each answer, so the
        delay is calibrated on short runs against the answers' own time."""
        connections, body, path = 16, '{"name":"rock","description":"yeah"}', '/jobs/genre.create'
        delay_ms = 1000 * connections / rate
        for _ in range(3):
            achieved = wrk(self.url + path, body, 2, connections=connections,
                           delay_ms=round(delay_ms)) / 2
            answer_ms = max(0.0, 1000 * connections / max(achieved, 1) - delay_ms)
            delay_ms = max(1.0, 1000 * connections / rate - answer_ms)
        progress(f'latency: {rate:.0f}/s offered with a {delay_ms:.1f} ms pause per connection')
        result = self.drive('latency', path, body, connections=connections,
                            delay_ms=round(delay_ms))
        result['offered_per_s'] = round(rate)
        return result

    def single_after(self, label):
        """The single scenario on the ledger as it is (no reset): jobs/s of
        the jobs accepted during the run, applied."""
        base = self.sql('SELECT coalesce(max(id), 0) FROM jobs')[0][0]
        progress(f'{label}: wrk {self.seconds} s on /jobs/genre.create')
        started = time.monotonic()
        wrk(self.url + '/jobs/genre.create', '{"name":"rock","description":"yeah"}', self.seconds)
        time.sleep(0.5)
        accepted = self.sql('SELECT count(*) FROM jobs WHERE id > :b', b=base)[0][0]
        finished = self.wait_applied_after(base)
        return round(accepted / (finished - started))

    def wait_applied_after(self, base, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.ledger(ledger.unfinished_count):
                return time.monotonic()
            time.sleep(0.25)
        raise RuntimeError(f'jobs past {base} not applied in {timeout} s')

    def fill_history(self, rows, step=1_000_000):
        progress(f'history: filling {rows:,} finished jobs over 30 days (SQL)')
        started = time.monotonic()
        for first in range(1, rows + 1, step):
            self.sql(FILL_HISTORY, first=first, last=min(rows, first + step - 1), rows=rows)
            progress(f'  {min(rows, first + step - 1):,} rows')
        self.sql(f"INSERT INTO job_counts (kind, event, slot, total, seconds) "
                 f"SELECT kind, status, 15, count(*), 0 FROM jobs GROUP BY kind, status "
                 f"ON CONFLICT (kind, event, slot) DO NOTHING")
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level='AUTOCOMMIT').execute(text('VACUUM ANALYZE jobs'))
        size = self.sql("SELECT pg_total_relation_size('jobs')")[0][0]
        progress(f'history: filled in {time.monotonic() - started:.0f} s, {size / 2**20:.0f} MiB')
        return size

    def restart_web(self):
        self.processes['web'].stop()
        self.processes['web'] = Process('web', self.env, self.log_dir)
        self._wait_up()

    def history(self):
        """The single scenario on an empty ledger and on one of `history_rows`
        finished jobs; listings and /metrics at that size; the single scenario
        while the pruning deletes a tenth of them."""
        import requests
        rows = self.history_rows
        self.reset()
        empty = self.single_after('history, empty ledger')
        self.reset()  # the history's ids first, as time made them
        size = self.fill_history(rows)
        full = self.single_after(f'history, {rows:,} jobs')
        result = {'scenario': 'history', 'rows': rows, 'ledger_mb': round(size / 2**20),
                  'bytes_per_job': round(size / rows),
                  'single_empty_jobs_per_s': empty, 'single_full_jobs_per_s': full,
                  'single_ratio': round(full / empty, 3)}
        for name, path in (('failed', '/jobs?status=failed&limit=50'),
                           ('kind', '/jobs?kind=user.credit&limit=50'),
                           ('failed_kind', '/jobs?status=failed&kind=user.credit&limit=50')):
            count, p50, p99, bad = wrk_get(self.url + path, self.seconds)
            progress(f'history: GET {path}: p50 {p50} ms, p99 {p99} ms ({count} requests)')
            result.update({f'list_{name}_p50_ms': p50, f'list_{name}_p99_ms': p99})
            assert not bad, f'{bad} non-2xx answers to {path}'
        # The page after next too: a cursor deep in the history.
        body = requests.get(self.url + '/jobs?status=failed&limit=1000').json()
        deep = f'/jobs?status=failed&limit=50&cursor={body["next"]}'
        result['list_failed_page2_p99_ms'] = wrk_get(self.url + deep, self.seconds)[2]
        self.restart_web()
        started = time.monotonic()
        requests.get(self.url + '/metrics', timeout=60).raise_for_status()
        result['metrics_first_ms'] = round((time.monotonic() - started) * 1000, 1)
        _, p50, p99, _ = wrk_get(self.url + '/metrics', self.seconds, connections=2)
        result.update({'metrics_p50_ms': p50, 'metrics_p99_ms': p99})
        progress(f'history: /metrics first {result["metrics_first_ms"]} ms, p99 {p99} ms')
        result.update(self.while_pruning(rows // 10, full))
        return result

    def while_pruning(self, count, without):
        """The single scenario while the oldest `count` jobs are due for
        pruning (a retention that makes them so), pruned as beat does it
        (at most 2 s every WORKER_PRUNE_EVERY_SECONDS, in batches); then the
        rest pruned flat out, for the catch-up rate."""
        import threading
        from worker.prune import BUDGET_SECONDS
        age = DAY * 30 * (1 - count / self.history_rows)
        batches = []
        stop = threading.Event()
        every = self.app.config['WORKER_PRUNE_EVERY_SECONDS']

        def prune(budget):
            with self.app.app_context():
                session = self.app.extensions['pg'].pool.connection().session
                return ledger.prune(session, {'succeeded': age, 'failed': age}, key_window=DAY,
                                    batch=self.app.config['WORKER_PRUNE_BATCH'],
                                    budget_seconds=budget,
                                    on_batch=lambda n, seconds: batches.append((n, seconds)))

        def beat():
            while not stop.is_set():
                started = time.monotonic()
                if not any(prune(BUDGET_SECONDS).values()):
                    return
                stop.wait(max(0.0, every - (time.monotonic() - started)))
        pruner = threading.Thread(target=beat, daemon=True)
        pruner.start()
        during = self.single_after(f'history, pruning {count:,} jobs as beat does')
        stop.set()
        pruner.join()
        in_run = sum(n for n, _ in batches)
        started = time.monotonic()
        rest = sum(prune(None).values())
        took = time.monotonic() - started
        progress(f'history: single {during}/s while beat pruned {in_run:,}; the other {rest:,} '
                 f'flat out in {took:.1f} s')
        times = sorted(seconds for _, seconds in batches)
        return {'pruned_during_single': in_run, 'pruned': in_run + rest,
                'prune_flat_out_jobs_per_s': round(rest / took) if took else None,
                'prune_batch_max_ms': round(times[-1] * 1000, 1),
                'prune_batch_p50_ms': round(times[len(times) // 2] * 1000, 1),
                'single_pruning_jobs_per_s': during, 'pruning_ratio': round(during / without, 3)}

    def index_cost(self):
        """single and batch with and without ix_jobs_finished (its one entry
        per finished job is all the listings cost the hot path)."""
        result = {'scenario': 'index_cost'}
        for label in ('with', 'without'):
            if label == 'without':
                self.sql('DROP INDEX ix_jobs_finished')
            result[f'single_{label}'] = self.single()['jobs_per_s']
            result[f'batch_{label}'] = self.batch()['jobs_per_s']
        self.sql("CREATE INDEX ix_jobs_finished ON jobs (kind, status, id) "
                 "WHERE status IN ('succeeded', 'failed')")
        result['single_cost'] = round(1 - result['single_with'] / result['single_without'], 3)
        result['batch_cost'] = round(1 - result['batch_with'] / result['batch_without'], 3)
        return result

    def memory(self, total=100_000, first=10_000):
        self.reset()
        items = [{'name': 'rock', 'description': 'yeah'}] * BATCH
        import requests
        session = requests.Session()
        worker = self.processes['worker']
        marks = {}
        for sent in range(BATCH, total + 1, BATCH):
            response = session.post(self.url + '/jobs/genre.create/batch', json=items, timeout=60)
            response.raise_for_status()
            if sent in (first, total):
                self.wait_applied(sent)
                marks[sent] = rss_bytes(worker.pid)
                progress(f'memory: worker RSS after {sent} jobs: {marks[sent] / 2**20:.1f} MiB')
        return {'scenario': 'memory', 'accepted': total, 'applied': total,
                'rss_first_mb': round(marks[first] / 2**20, 1),
                'rss_last_mb': round(marks[total] / 2**20, 1),
                'growth': round(marks[total] / marks[first] - 1, 3)}


def main(argv):
    import argparse
    parser = argparse.ArgumentParser(prog='manage.py bench', description=__doc__)
    parser.add_argument('--seconds', type=int, default=10, help='wrk duration per scenario')
    parser.add_argument('--scenarios', default=','.join(SCENARIOS),
                        help=f'of {", ".join(SCENARIOS + OTHER_SCENARIOS)}')
    parser.add_argument('--history-rows', type=int, default=10_000_000,
                        help='finished jobs the history scenario fills the ledger with')
    parser.add_argument('--no-naive', action='store_true', help='skip the naive stack')
    args = parser.parse_args(argv)
    wanted = args.scenarios.split(',')
    naive_single = naive_locked = None
    if not args.no_naive:
        naive_single = naive('single', args.seconds)
        if 'hot_row' in wanted:
            naive_locked = naive('locked', args.seconds)
    log_dir = tempfile.mkdtemp(prefix='bench-logs-')
    bench = Bench(args.seconds, log_dir, history_rows=args.history_rows)
    bench.start()
    results = []
    try:
        single = None
        for scenario in wanted:
            if scenario == 'latency':
                peak = (single or bench.single())['jobs_per_s']
                result = bench.latency(peak / 2)
            else:
                result = getattr(bench, scenario)()
            if scenario == 'single':
                single = result
            # Throughput ratios only: latency and memory have targets of their own.
            reference = {'single': naive_single, 'batch': naive_single,
                         'hot_row': naive_locked}.get(scenario)
            if reference:
                result['naive_jobs_per_s'] = reference
                result['ratio'] = round(result['jobs_per_s'] / reference, 2)
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        bench.stop()
    progress(f'logs in {log_dir}')
    return 0
