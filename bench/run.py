"""`python3 manage.py bench`: the service against two peers and the database's
own floor, in one run.

The peers (the naive Flask + Celery stack and the procrastinate stack, each by
its own run.sh, bench/anchors.py) run first, alone on the machine. Then each
scenario of the service starts from empty tables, drives it over HTTP with
wrk, waits until every accepted job is applied, and prints one JSON line with
its throughput and the CPU its processes spent per 1,000 jobs (bench/cpu.py).
Progress goes to stderr.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

import ledger
from ledger import counts, history

from bench.anchors import anchors
from bench.cpu import CpuMeter, per_thousand, tree
from bench.floor import floor
from bench.poller import Poller
from cli.processes import Process, rss_bytes
from service.brokers import empty as empty_broker

DB_URL = os.environ.get('BENCH_DATABASE_URL', 'postgresql://ds:dsps@127.0.0.1:5432/ds_bench')
# `--broker rabbitmq`: a virtual host of the benchmark's own is best.
RABBITMQ_URL = os.environ.get('BENCH_RABBITMQ_URL', 'amqp://guest:guest@127.0.0.1:5672//')
BROKERS = ('redis', 'rabbitmq')
PORT = int(os.environ.get('BENCH_PORT', '8741'))
ADMIN_URL = 'postgresql://postgres@127.0.0.1:5432/postgres'
SCENARIOS = ('single', 'single_token', 'batch', 'hot_row', 'latency', 'memory', 'floor', 'scheduled')
OTHER_SCENARIOS = ('history', 'index_cost')  # run when named
BATCH = 500
TOKEN = 'bench-token-0123456789abcdef'  # single_token's bearer token
DAY = 86400
# The probes of the client-side latency: a few jobs a second, polled every 2 ms.
PROBES_PER_S = 20
POLL_MS = 2.0


def progress(message):
    print(f'[bench {time.strftime("%H:%M:%S")}] {message}', file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Broker:
    """The bench's Redis: BENCH_BROKER_URL if given, else a redis-server of its
    own on a free port (its CPU is then the bench's alone: a shared server's
    would count other clients' too). Its server's pid comes from INFO."""

    def __init__(self, log_dir):
        self.process = None
        url = os.environ.get('BENCH_BROKER_URL')
        if url is None:
            if shutil.which('redis-server') is None:
                raise RuntimeError('the benchmark needs redis-server (or BENCH_BROKER_URL)')
            port = free_port()
            with open(os.path.join(log_dir, 'redis.log'), 'ab') as log:
                self.process = subprocess.Popen(
                    ['redis-server', '--port', str(port), '--bind', '127.0.0.1', '--save', '',
                     '--appendonly', 'no', '--dir', log_dir], stdout=log, stderr=subprocess.STDOUT)
            url = f'redis://127.0.0.1:{port}/14'
        self.url = url
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                self.pid = client.info('server')['process_id']
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f'no Redis at {url}')
        # The naive stack's broker: the same server, another database.
        self.naive_url = os.environ.get('NAIVE_BROKER_URL', re.sub(r'/\d*$', '/15', url))

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait()


def wrk_get(url, seconds, connections=4):
    """GET `url` for `seconds`; return (requests, p50 ms, p99 ms, non-2xx)."""
    out = subprocess.run(['wrk', '-t1', f'-c{connections}', f'-d{seconds}s', '--latency', url],
                         capture_output=True, text=True, check=True).stdout
    total, failed = wrk_answers(out)
    latency = wrk_latency(out)
    return total, latency[50], latency[99], failed


def wrk(url, body, seconds, connections=16, delay_ms=None, headers=None):
    """POST `body` to `url` for `seconds` (with `headers` too, if given);
    return (2xx answers, {percentile: ms}) with wrk's own latency
    distribution (50, 75, 90, 99)."""
    lua = ['wrk.method = "POST"', f'wrk.body = {json.dumps(body)}',
           'wrk.headers["Content-Type"] = "application/json"',
           *(f'wrk.headers[{json.dumps(name)}] = {json.dumps(value)}'
             for name, value in (headers or {}).items())]
    if delay_ms:
        lua.append(f'function delay() return {delay_ms} end')
    with tempfile.NamedTemporaryFile('w', suffix='.lua') as script:
        script.write('\n'.join(lua) + '\n')
        script.flush()
        out = subprocess.run(['wrk', '-t1', f'-c{connections}', f'-d{seconds}s', '--latency',
                              '-s', script.name, url],
                             capture_output=True, text=True, check=True).stdout
    total, failed = wrk_answers(out)
    return total - failed, wrk_latency(out)


def finished_total(conn):
    """Jobs finished, by the tallies of their outcomes (ledger.counts)."""
    finished = set(ledger.Status.finished())
    return sum(total for (_, event), (total, _, _) in counts.totals(conn).items()
               if event in finished)


def wrk_answers(out):
    """(requests, non-2xx answers) from wrk's summary."""
    failed = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
    return int(re.search(r'(\d+) requests in', out).group(1)), int(failed.group(1)) if failed else 0


def wrk_latency(out):
    """{50: ms, 75: ms, 90: ms, 99: ms} from wrk's "Latency Distribution"."""
    scale = {'us': 0.001, 'ms': 1.0, 's': 1000.0, 'm': 60000.0}
    found = {}
    for percent, value, unit in re.findall(r'^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$', out, re.M):
        found[int(percent)] = round(float(value) * scale[unit], 2)
    return found


class Bench:
    def __init__(self, seconds, log_dir, broker, broker_name='redis', history_rows=10_000_000,
                 keep_history=False):
        self.seconds = seconds
        self.history_rows = history_rows
        self.log_dir = log_dir
        self.broker = broker
        self.broker_name = broker_name
        # RabbitMQ's server is not the bench's own: its CPU is not counted.
        self.broker_url = broker.url if broker_name == 'redis' else RABBITMQ_URL
        self.url = f'http://127.0.0.1:{PORT}'
        self.engine = create_engine(DB_URL)
        self.env = dict(os.environ, **{
            'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
            'FLASK_CONFIG_PREFIXES': 'FLASK,SQLALCHEMY,CELERY',
            'SQLALCHEMY_DEFAULT': DB_URL, 'CELERY_BROKER_URL': self.broker_url, 'PORT': str(PORT),
            'FLASK_API_TOKENS': '',
            'WORKER_CONCURRENCY': os.environ.get('WORKER_CONCURRENCY', '2'),
            'BEAT_SCHEDULE_FILE': os.path.join(log_dir, 'celerybeat-schedule'),
        })
        if keep_history:
            # The history's jobs are up to 30 days old at once: with the default
            # retention, beat's prune deleted a quarter of a million of them every
            # 10 s through the scenario (in beat's process, on the same database
            # and cores). The scenario prunes them itself, as beat would, where it
            # measures that.
            self.env.update({f'WORKER_RETAIN_{status.upper()}_SECONDS': '0'
                             for status in ledger.Status.finished()})
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
        # The service as deployed: web, worker and beat (the sweep's schedule).
        for name in ('web', 'worker', 'beat'):
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

    def meter(self):
        """A CpuMeter of the service: its processes' trees, their backends, Redis."""
        def groups(table):
            found = {}
            for name, process in self.processes.items():
                found.update((pid, name) for pid in tree(process.pid, table))
            if self.broker_name == 'redis':
                found[self.broker.pid] = 'redis'
            return found
        return CpuMeter(groups, DB_URL)

    def wait_applied(self, accepted, timeout=300):
        """Wait until `accepted` jobs are finished; return the time it happened."""
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            # The tallies of outcomes (a few rows), and the unfinished jobs
            # counted only once those say all are done: counted every 0.1 s
            # under batch's backlog, the unfinished jobs were read row by row
            # (their pages' visibility not yet set), a PostgreSQL backend busy
            # two thirds of the time beside the service under test.
            done = self.ledger(finished_total)
            if done >= accepted and self.ledger(ledger.unfinished_count) == 0:
                return time.monotonic()
            if done != last:
                progress(f'  applied {done}/{accepted}')
                last = done
            time.sleep(0.1)
        raise RuntimeError(f'only {last} of {accepted} jobs applied in {timeout} s')

    def figures(self, scenario, accepted, started, finished, spent):
        applied, p50, p99 = self.ledger(ledger.succeeded_durations)
        cpu, by_process = per_thousand(spent, applied)
        return {'scenario': scenario, 'accepted': accepted, 'applied': applied,
                'jobs_per_s': round(applied / (finished - started)),
                'p50_ms': round(p50.total_seconds() * 1000, 1) if p50 else None,
                'p99_ms': round(p99.total_seconds() * 1000, 1) if p99 else None,
                'cpu_s_per_1k_jobs': cpu, 'cpu_s_per_1k_by_process': by_process}

    def drive(self, scenario, path, body, poller=None, **wrk_options):
        """wrk on `path` (and the poller's probes, if any) with the CPU meter
        running, until every job accepted meanwhile is applied."""
        progress(f'{scenario}: wrk {self.seconds} s on {path}')
        meter = self.meter()
        try:
            meter.start()
            started = time.monotonic()
            if poller:
                poller.start()
            _, latency = wrk(self.url + path, body, self.seconds, **wrk_options)
            probes = poller.stop() if poller else {}
            accepted = self.recorded()
            finished = self.wait_applied(accepted)
            spent = meter.stop()
        finally:
            meter.close()
        result = self.figures(scenario, accepted, started, finished, spent)
        result['post_202_p50_ms'] = latency.get(50)
        result['post_202_p99_ms'] = latency.get(99)
        result.update(probes)
        return result

    def recorded(self):
        """Jobs the service accepted: the ledger's rows once wrk is done (wrk
        does not count the answers still in flight when it stops)."""
        time.sleep(0.5)
        return self.ledger(ledger.total_count)

    def single(self):
        self.reset()
        return self.drive('single', '/jobs/genre.create', '{"name":"rock","description":"yeah"}')

    def single_token(self):
        """The single scenario as production runs it: each POST with a bearer
        token, counted against the enqueue rate limit in Redis (a limit past
        what the run reaches: none is refused). The web restarts with them,
        and again without them after."""
        self.reset()
        production = {'FLASK_API_TOKENS': TOKEN, 'FLASK_RATE_LIMIT_ENQUEUE': '1000000/second'}
        before = {name: self.env.get(name) for name in production}
        self.env.update(production)
        self.restart_web()
        try:
            return self.drive('single_token', '/jobs/genre.create',
                              '{"name":"rock","description":"yeah"}',
                              headers={'Authorization': f'Bearer {TOKEN}'})
        finally:
            for name, value in before.items():
                if value is None:
                    self.env.pop(name)
                else:
                    self.env[name] = value
            self.restart_web()

    def batch(self):
        self.reset()
        items = ','.join('{"name":"rock","description":"yeah"}' for _ in range(BATCH))
        return self.drive('batch', '/jobs/genre.create/batch', f'[{items}]', connections=4)

    def hot_row(self):
        self.reset()
        self.sql("INSERT INTO users (username, email, is_active, credit_score) VALUES ('hot', 'h@x.io', false, 0)")
        result = self.drive('hot_row', '/jobs/user.credit', '{"user_id":1,"amount":1}')
        credit = self.sql('SELECT credit_score FROM users WHERE id = 1')[0][0]
        result['exact_sum'] = credit == result['accepted']
        return result

    def latency(self, rate):
        """Offer `rate` jobs/s: wrk waits `delay` after each answer (calibrated
        on short runs against the answers' own time) and offers all but the
        poller's probes, which measure POST to seen succeeded."""
        connections, body, path = 16, '{"name":"rock","description":"yeah"}', '/jobs/genre.create'
        offered = max(rate - PROBES_PER_S, 1)
        delay_ms = 1000 * connections / offered
        for _ in range(3):
            # With the probes polling, as in the run: their GETs slow the answers.
            probes = Poller(self.url, PROBES_PER_S, POLL_MS)
            probes.start()
            try:
                achieved = wrk(self.url + path, body, 2, connections=connections,
                               delay_ms=round(delay_ms))[0] / 2
            finally:
                probes.stop()
            answer_ms = max(0.0, 1000 * connections / max(achieved, 1) - delay_ms)
            delay_ms = max(1.0, 1000 * connections / offered - answer_ms)
        progress(f'latency: {rate:.0f}/s offered with a {delay_ms:.1f} ms pause per connection,'
                 f' {PROBES_PER_S} probes/s polled every {POLL_MS} ms')
        self.reset()
        result = self.drive('latency', path, body, connections=connections,
                            delay_ms=round(delay_ms),
                            poller=Poller(self.url, PROBES_PER_S, POLL_MS))
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

    def single_after(self, label):
        """The single scenario on the ledger as it is (no reset): jobs/s of
        the jobs accepted during the run, applied."""
        base = self.ledger(history.newest_id)
        progress(f'{label}: wrk {self.seconds} s on /jobs/genre.create')
        started = time.monotonic()
        wrk(self.url + '/jobs/genre.create', '{"name":"rock","description":"yeah"}', self.seconds)
        time.sleep(0.5)
        accepted = self.ledger(lambda conn: history.count_after(conn, base))
        finished = self.wait_applied(accepted)
        return round(accepted / (finished - started))

    def fill_history(self, rows, step=1_000_000):
        progress(f'history: filling {rows:,} finished jobs over 30 days (SQL)')
        started = time.monotonic()
        for first in range(1, rows + 1, step):
            self.ledger(lambda conn: history.fill(conn, first, min(rows, first + step - 1), rows))
            progress(f'  {min(rows, first + step - 1):,} rows')
        self.ledger(history.count_filled)
        history.vacuum_analyze(self.engine)
        self.checkpoint()
        size = self.ledger(history.size_bytes)
        progress(f'history: filled in {time.monotonic() - started:.0f} s, {size / 2**20:.0f} MiB')
        return size

    def checkpoint(self):
        """Write out what the fill left dirty now: the fill writes GBs of WAL
        in a minute, whose checkpoints otherwise went on through the next
        scenarios (single at 10M ran at 0.63 to 0.97 of empty from run to run).
        CHECKPOINT needs pg_checkpoint or a superuser: the bench's role, else
        PG_ADMIN_URL's (default the local postgres role); neither: say so."""
        for url in (DB_URL, os.environ.get('PG_ADMIN_URL', ADMIN_URL)):
            engine = create_engine(url, isolation_level='AUTOCOMMIT')
            try:
                with engine.connect() as conn:
                    conn.execute(text('CHECKPOINT'))
                return
            except SQLAlchemyError:
                continue
            finally:
                engine.dispose()
        progress('history: no CHECKPOINT allowed (grant pg_checkpoint to the bench\'s role, '
                 'or set PG_ADMIN_URL): checkpoints of the fill may slow what follows')

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
                self.ledger(history.drop_finished_index)
            result[f'single_{label}'] = self.single()['jobs_per_s']
            result[f'batch_{label}'] = self.batch()['jobs_per_s']
        self.ledger(history.create_finished_index)
        result['single_cost'] = round(1 - result['single_with'] / result['single_without'], 3)
        result['batch_cost'] = round(1 - result['batch_with'] / result['batch_without'], 3)
        return result

    def floor(self):
        self.reset()
        progress(f'floor: {self.seconds} s of batches straight to PostgreSQL')
        return floor(self.engine, self.seconds)


def compare(result, peers, floor_result):
    """Add the ratios of `result` to the peers' figures of the same kind of
    load and to the floor's CPU per job."""
    kind = {'single': 'single', 'single_token': 'single', 'batch': 'single',
            'hot_row': 'locked'}.get(result['scenario'])
    for name, figures in peers.items():
        peer = figures.get(kind)
        if peer is None:
            continue
        result[f'{name}_jobs_per_s'] = peer['jobs_per_s']
        result[f'{name}_ratio'] = round(result['jobs_per_s'] / peer['jobs_per_s'], 2)
        if result.get('cpu_s_per_1k_jobs') and peer.get('cpu_s_per_1k_jobs'):
            result[f'{name}_cpu_s_per_1k_jobs'] = peer['cpu_s_per_1k_jobs']
            result[f'cpu_share_of_{name}'] = round(
                result['cpu_s_per_1k_jobs'] / peer['cpu_s_per_1k_jobs'], 3)
    if 'naive_ratio' in result:
        result['ratio'] = result['naive_ratio']  # the name of earlier runs' lines
    if floor_result and kind and result.get('cpu_s_per_1k_jobs'):
        result['floor_cpu_s_per_1k_jobs'] = floor_result['cpu_s_per_1k_jobs']
        result['cpu_vs_floor'] = round(
            result['cpu_s_per_1k_jobs'] / floor_result['cpu_s_per_1k_jobs'], 2)
    return result


def emit(result):
    print(json.dumps(result), flush=True)


SCHEDULED_JOBS = 10_000  # --scheduled-jobs 100000 for the size
SCHEDULED_RATE = 2000  # jobs falling due per second: about the single-POST peak


def scheduled(bench, total, rate=SCHEDULED_RATE):
    """`total` jobs scheduled (batches of BATCH, each its own run_at, `rate`
    falling due per second, after a lead long enough to post them all),
    published by beat's due pass: how late they ran, run_at to completion."""
    bench.reset()  # the service's beat runs the due pass
    import requests
    session = requests.Session()
    batches = max(1, total // BATCH)
    lead = 5 + total / 5000  # seconds to post them all before the first is due
    spread = batches * BATCH / rate
    start = time.time() + lead
    items = [{'name': 'later', 'description': 'scheduled'}] * BATCH
    progress(f'scheduled: {batches * BATCH} jobs, due from {lead:.0f} s on over {spread:.0f} s')
    posted_late = 0
    for i in range(batches):
        run_at = start + i * spread / batches
        stamp = datetime.fromtimestamp(run_at, timezone.utc).isoformat()
        session.post(bench.url + '/jobs/genre.create/batch', params={'run_at': stamp},
                     json=items, timeout=60).raise_for_status()
        posted_late += time.time() > run_at
    bench.wait_applied(batches * BATCH, timeout=lead + spread + 300)
    count, p50, p99, earliest = bench.ledger(ledger.scheduled_lateness)
    return {'scenario': 'scheduled', 'accepted': batches * BATCH, 'applied': count,
            'due_per_s': rate,
            'lateness_p50_ms': round(p50.total_seconds() * 1000, 1),
            'lateness_p99_ms': round(p99.total_seconds() * 1000, 1),
            'earliest_ms': round(earliest.total_seconds() * 1000, 1),
            'posted_after_due': posted_late}


def main(argv):
    import argparse
    parser = argparse.ArgumentParser(prog='manage.py bench', description=__doc__)
    parser.add_argument('--seconds', type=int, default=10, help='wrk duration per scenario')
    parser.add_argument('--scenarios', default=','.join(SCENARIOS),
                        help=f'of {", ".join(SCENARIOS + OTHER_SCENARIOS)}')
    parser.add_argument('--history-rows', type=int, default=10_000_000,
                        help='finished jobs the history scenario fills the ledger with')
    parser.add_argument('--no-naive', action='store_true', help='skip the naive stack')
    parser.add_argument('--no-procrastinate', action='store_true',
                        help='skip the procrastinate stack')
    parser.add_argument('--broker', default='redis',
                        help='comma-separated brokers to run the scenarios on, one after the '
                             'other: redis (its own server, or BENCH_BROKER_URL), rabbitmq '
                             '(BENCH_RABBITMQ_URL)')
    parser.add_argument('--scheduled-jobs', type=int, default=SCHEDULED_JOBS, metavar='N',
                        help=f'jobs of the scheduled scenario (default {SCHEDULED_JOBS:,}; '
                             'the lateness target is for 100,000)')
    parser.add_argument('--scheduled-rate', type=int, default=SCHEDULED_RATE, metavar='N',
                        help=f'of those, jobs falling due per second (default {SCHEDULED_RATE})')
    args = parser.parse_args(argv)
    wanted = args.scenarios.split(',')
    unknown = set(wanted) - set(SCENARIOS + OTHER_SCENARIOS)
    if unknown:
        parser.error(f'unknown scenarios: {", ".join(sorted(unknown))}')
    log_dir = tempfile.mkdtemp(prefix='bench-logs-')
    brokers = args.broker.split(',')
    unknown_brokers = set(brokers) - set(BROKERS)
    if unknown_brokers:
        parser.error(f'unknown broker {", ".join(sorted(unknown_brokers))}: '
                     f'choose among {", ".join(BROKERS)}')
    broker = Broker(log_dir)
    try:
        peers = {}
        kinds = ['single'] if {'single', 'batch'} & set(wanted) else []
        kinds += ['locked'] if 'hot_row' in wanted else []
        for anchor in anchors(DB_URL, broker.naive_url, broker.pid, progress,
                              with_naive=not args.no_naive,
                              with_procrastinate=not args.no_procrastinate and bool(kinds)):
            for kind in kinds:
                result = anchor.run(kind, args.seconds, DB_URL, progress)
                peers.setdefault(anchor.name, {})[kind] = result
                emit(result)
        for name in brokers:
            progress(f'broker {name}')
            run_service(args, wanted, os.path.join(log_dir, name), broker, peers, name)
    finally:
        broker.stop()
    progress(f'logs in {log_dir}')
    return 0


def run_service(args, wanted, log_dir, broker, peers, broker_name='redis'):
    os.makedirs(log_dir, exist_ok=True)
    bench = Bench(args.seconds, log_dir, broker, broker_name, history_rows=args.history_rows,
                  keep_history='history' in wanted)
    bench.start()
    try:
        floor_result = None
        if 'floor' in wanted:  # first: the others' lines compare with it
            floor_result = bench.floor()
            emit(floor_result)
        single = None
        for scenario in wanted:
            if scenario == 'floor':
                continue
            if scenario == 'latency':
                peak = (single or bench.single())['jobs_per_s']
                result = bench.latency(peak / 2)
            elif scenario == 'scheduled':
                result = scheduled(bench, args.scheduled_jobs, args.scheduled_rate)
            else:
                result = getattr(bench, scenario)()
            if scenario == 'single':
                single = result
            result['broker'] = bench.broker_name
            emit(compare(result, peers, floor_result))
    finally:
        bench.stop()
