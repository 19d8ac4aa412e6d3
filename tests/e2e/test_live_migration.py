"""`manage.py db upgrade` on a live ledger of 1M jobs (filled in SQL) while
POSTs go on: the new index (ix_jobs_finished, migration 0005) is built
CONCURRENTLY, so no POST fails and none waits a second."""
import os
import subprocess
import sys
import threading
import time

import redis
import requests
from alembic import command
from sqlalchemy import create_engine, text

from tests.alembic_config import ROOT, alembic_config
from tests.e2e.service import Service, free_port
from tests.settings import BROKER_URL

ROWS = 1_000_000
SLOWEST_SECONDS = 1.0

FILL = text('''
INSERT INTO jobs (kind, payload, status, attempts, result, finished_at, created_at, updated_at)
SELECT CASE WHEN i % 3 = 0 THEN 'genre.create' ELSE 'user.credit' END,
       '{"name": "old", "description": "history"}', CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'succeeded' END,
       1, '{"id": 1}', t + interval '50 ms', t, t + interval '50 ms'
FROM generate_series(1, :rows) AS i,
     LATERAL (SELECT now() - interval '30 days' + i * interval '30 days' / :rows AS t) AS at
''')


class Poster(threading.Thread):
    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.answers = url, []
        self.stopping = threading.Event()

    def run(self):
        http = requests.Session()
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                status = http.post(f'{self.url}/jobs/genre.create', timeout=10,
                                   json={'name': 'live', 'description': 'migration'}).status_code
            except requests.RequestException as error:
                status = type(error).__name__
            self.answers.append((status, time.monotonic() - started))


def test_db_upgrade_builds_the_index_while_posts_go_on(new_database, service_env, tmp_path, big):
    url = new_database()
    command.upgrade(alembic_config(url), '0004')
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(FILL, {'rows': ROWS * (10 if big else 1)})
    with engine.connect() as conn:
        conn.execution_options(isolation_level='AUTOCOMMIT').execute(text('VACUUM ANALYZE jobs'))
    redis.Redis.from_url(BROKER_URL).flushdb()
    env = {**service_env, 'SQLALCHEMY_DEFAULT': url, 'PORT': str(free_port())}
    svc = Service(env, str(tmp_path))
    with svc.running('web', 'worker'):  # the worker: the POSTs' jobs are applied meanwhile
        posters = [Poster(svc.url) for _ in range(2)]
        for poster in posters:
            poster.start()
        time.sleep(1)
        started = time.monotonic()
        upgrade = subprocess.run([sys.executable, 'manage.py', 'db', 'upgrade'], cwd=ROOT,
                                 env=dict(os.environ, MANAGE_IN_CONTAINER='1',
                                          SQLALCHEMY_DEFAULT=url),
                                 capture_output=True, text=True, timeout=600)
        took = time.monotonic() - started
        time.sleep(0.5)
        for poster in posters:
            poster.stopping.set()
        for poster in posters:
            poster.join()
        web_log = svc.processes['web'].log()
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    assert 'Running upgrade 0004 -> 0005' in upgrade.stderr
    with engine.connect() as conn:
        valid = conn.execute(text(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_jobs_finished'::regclass")).scalar()
    engine.dispose()
    answers = [a for poster in posters for a in poster.answers]
    statuses = {status for status, _ in answers}
    slowest = max(seconds for _, seconds in answers)
    print(f'\nlive migration: upgrade {took:.1f} s, {len(answers)} POSTs meanwhile, '
          f'statuses {statuses}, slowest {slowest * 1000:.0f} ms')
    assert valid
    assert statuses == {202}, [line for line in web_log.splitlines() if 'ERROR' in line][-5:]
    assert slowest < SLOWEST_SECONDS
