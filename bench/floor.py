"""The `floor` scenario: the same jobs' database work alone, with no HTTP, no
broker and no Python per job: batches of genre.create jobs recorded,
claimed, applied and completed by ledger/floor.py's three statements, one
connection, back to back for the scenario's seconds.

Its CPU is its backend's (read from /proc by pid) and the client's (this
thread's): what PostgreSQL itself needs per job on this machine, the bound
the service's own CPU per job is compared with.
"""
import json
import os
import time

from sqlalchemy import text

from bench.cpu import TICK, stat
from ledger import floor as ledger_floor

# Jobs per batch: CPU per job falls with the batch's size up to a few
# thousand (1,000: 26 ms per 1,000 jobs, 5,000: 21 ms, on 2 busy cores).
BATCH = int(os.environ.get('BENCH_FLOOR_BATCH', '5000'))
PAYLOAD = {'name': 'rock', 'description': 'yeah'}


def floor(engine, seconds, batch=BATCH):
    """Run batches of `batch` jobs for `seconds`; return the scenario's JSON line."""
    payloads = json.dumps([PAYLOAD] * batch)  # once: no Python per job in the loop
    with engine.connect() as conn:
        backend = conn.execute(text('SELECT pg_backend_pid()')).scalar()
        conn.commit()
        ledger_floor.genre_batch(conn, payloads)  # plans made, caches warm: not counted
        jobs = 0
        server, client = stat(backend)[2], time.thread_time()
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            jobs += ledger_floor.genre_batch(conn, payloads)
        elapsed = time.monotonic() - started
        server = (stat(backend)[2] - server) / TICK
        client = time.thread_time() - client
    scale = 1000 / jobs
    return {'scenario': 'floor', 'batch': batch, 'applied': jobs,
            'jobs_per_s': round(jobs / elapsed),
            'cpu_s_per_1k_jobs': round((server + client) * scale, 3),
            'cpu_s_per_1k_by_process': {'postgres': round(server * scale, 3),
                                        'client': round(client * scale, 3)}}
