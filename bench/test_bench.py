"""The benchmark's own measurements: CPU read from /proc and given to the
right stack (its PostgreSQL backends found by their client's socket), the
floor's batch applied as the worker would, wrk's latency read back."""
import json
import subprocess
import sys
import time

from sqlalchemy import create_engine, text

from bench.cpu import TICK, CpuMeter, per_thousand, processes, stat, tree
from bench.floor import floor
from bench.run import wrk_latency
from tests.settings import DATABASE_URL

# A client that makes its backend burn CPU, then waits to be stopped.
BUSY = '''
import sys, time, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    conn.execute("SELECT count(*) FROM generate_series(1, 4000000)").fetchone()
    print("done", flush=True)
    time.sleep(60)
'''


def test_backends_counted_only_for_the_measured_clients():
    measured = subprocess.Popen([sys.executable, '-c', BUSY, DATABASE_URL], stdout=subprocess.PIPE,
                                text=True)
    meter = CpuMeter(lambda table: {pid: 'client' for pid in tree(measured.pid, table)},
                     DATABASE_URL, interval=0.05)
    other = create_engine(DATABASE_URL)
    try:
        meter.start()
        with other.connect() as conn:  # a stranger's backend: as busy, not counted
            backend = conn.execute(text('SELECT pg_backend_pid()')).scalar()
            before = stat(backend)[2]
            conn.execute(text('SELECT count(*) FROM generate_series(1, 4000000)')).scalar()
            stranger = (stat(backend)[2] - before) / TICK
        assert measured.stdout.readline().strip() == 'done'
        spent = meter.stop()
    finally:
        measured.kill()
        measured.wait()
        meter.close()
        other.dispose()
    # The same query as the stranger's: counted once, not twice.
    assert 0.5 * stranger < spent['postgres'] < 1.5 * stranger, (spent, stranger)
    assert spent['client'] < spent['postgres']


def test_a_process_tree_includes_the_children():
    parent = subprocess.Popen(['sh', '-c', 'sleep 30 & sleep 30 & wait'])
    try:
        time.sleep(0.3)
        found = tree(parent.pid, processes())
        assert parent.pid in found and len(found) == 3
    finally:
        parent.kill()
        parent.wait()


def test_per_thousand():
    assert per_thousand({'web': 1.0, 'postgres': 0.5}, 3000) == (0.5, {'postgres': 0.167,
                                                                       'web': 0.333})
    assert per_thousand({}, 0) == (None, {})


def test_floor_applies_every_job_with_its_own_genre(db):
    engine = create_engine(DATABASE_URL)
    try:
        result = floor(engine, seconds=0.2, batch=300)
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT j.status, j.attempts, g.name FROM jobs j "
                "LEFT JOIN genre g ON g.id = CAST(j.result->>'id' AS int)")).all()
            genres = conn.execute(text('SELECT count(DISTINCT id) FROM genre')).scalar()
    finally:
        engine.dispose()
    # The warm-up batch is applied too, not counted.
    assert result['applied'] % 300 == 0 and len(rows) == result['applied'] + 300
    assert set(rows) == {('succeeded', 1, 'rock')}
    assert genres == len(rows)
    assert result['cpu_s_per_1k_jobs'] > 0 and set(result['cpu_s_per_1k_by_process']) == {
        'postgres', 'client'}
    json.dumps(result)


def test_wrk_latency_distribution_in_ms():
    out = '''  Latency Distribution
     50%  812.00us
     75%    1.50ms
     90%    2.10s
     99%    1.00m
'''
    assert wrk_latency(out) == {50: 0.81, 75: 1.5, 90: 2100.0, 99: 60000.0}
