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
# `--broker rabbitmq`: a virtual host of the benchmark's own is best.
BROKERS = {'redis': BROKER_URL,
           'rabbitmq': os.environ.get('BENCH_RABBITMQ_URL', 'amqp://guest:guest@127.0.0.1:5672//')}
NAIVE_DIR = os.environ.get('NAIVE_STACK_DIR',
                           os.path.join(ROOT, '..', 'shared', 'anchors', 'naive_stack'))
PORT = int(os.environ.get('BENCH_PORT', '8741'))
SCENARIOS = ('single', 'batch', 'hot_row', 'latency', 'memory')
BATCH = 500


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


def empty_broker(url):
    """No message of an earlier run: the Redis database flushed, or the
    RabbitMQ jobs queue deleted (the service declares it again)."""
    if url.startswith('redis'):
        redis.Redis.from_url(url).flushdb()
        return
    from kombu import Connection
    with Connection(url, connect_timeout=10) as connection:
        channel = connection.channel()
        try:
            channel.queue_delete('jobs')
        finally:
            channel.close()


class Bench:
    def __init__(self, seconds, log_dir, broker_url=BROKER_URL):
        self.seconds = seconds
        self.log_dir = log_dir
        self.broker_url = broker_url
        self.url = f'http://127.0.0.1:{PORT}'
        self.engine = create_engine(DB_URL)
        self.env = dict(os.environ, **{
            'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
            'FLASK_CONFIG_PREFIXES': 'FLASK,SQLALCHEMY,CELERY',
            'SQLALCHEMY_DEFAULT': DB_URL, 'CELERY_BROKER_URL': broker_url, 'PORT': str(PORT),
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
                                      'CELERY_BROKER_URL': self.broker_url})
        with self.app.app_context():
            self.app.extensions['pg'].dropdb()
            self.app.extensions['pg'].syncdb()
        empty_broker(self.broker_url)
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


def run_scenarios(broker, wanted, seconds, log_dir, naive_single, naive_locked):
    """The scenarios on one broker, a JSON line each (with the broker's name)."""
    os.makedirs(log_dir, exist_ok=True)
    progress(f'broker {broker}')
    bench = Bench(seconds, log_dir, BROKERS[broker])
    bench.start()
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
            result['broker'] = broker
            print(json.dumps(result), flush=True)
    finally:
        bench.stop()


def main(argv):
    import argparse
    parser = argparse.ArgumentParser(prog='manage.py bench', description=__doc__)
    parser.add_argument('--seconds', type=int, default=10, help='wrk duration per scenario')
    parser.add_argument('--scenarios', default=','.join(SCENARIOS))
    parser.add_argument('--no-naive', action='store_true', help='skip the naive stack')
    parser.add_argument('--broker', default='redis',
                        help='comma-separated brokers to run the scenarios on, one after the '
                             'other: redis (BENCH_BROKER_URL), rabbitmq (BENCH_RABBITMQ_URL)')
    args = parser.parse_args(argv)
    wanted = args.scenarios.split(',')
    brokers = args.broker.split(',')
    unknown = [b for b in brokers if b not in BROKERS]
    if unknown:
        parser.error(f'unknown broker {", ".join(unknown)}: choose among {", ".join(BROKERS)}')
    naive_single = naive_locked = None
    if not args.no_naive:
        naive_single = naive('single', args.seconds)
        if 'hot_row' in wanted:
            naive_locked = naive('locked', args.seconds)
    log_dir = tempfile.mkdtemp(prefix='bench-logs-')
    for broker in brokers:
        run_scenarios(broker, wanted, args.seconds, os.path.join(log_dir, broker),
                      naive_single, naive_locked)
    progress(f'logs in {log_dir}')
    return 0
