"""The embedded servers of a data folder (devservers.servers.Servers): one
holder at a time, and what a killed holder left running is stopped by the next."""
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import psycopg
import pytest
import redis

from devservers.servers import AlreadyRunning, Servers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
URLS = ('postgresql://ds:dsps@127.0.0.1:5432/ds', 'redis://127.0.0.1:6379/0')
HOLD = '''
import json, sys, time
from devservers.servers import Servers
servers = Servers(sys.argv[1], *sys.argv[2:4], postgres=True, redis=True, durable=False).__enter__()
print(json.dumps([servers.postgres.pids()[0], servers.redis.pids()[0]]), flush=True)
time.sleep(600)
'''


@pytest.fixture
def folder():
    # In the system's temporary folder: PostgreSQL's own user must pass through the folders above.
    with tempfile.TemporaryDirectory(prefix='ds-devservers-') as path:
        yield Path(path)


def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_killed_holder_lets_go_and_its_servers_are_replaced(folder):
    holder = subprocess.Popen([sys.executable, '-c', HOLD, str(folder), *URLS], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        old = json.loads(holder.stdout.readline())
        with pytest.raises(AlreadyRunning, match=f'in use by process {holder.pid}'):
            Servers(folder, *URLS, postgres=True).__enter__()
    finally:
        holder.send_signal(signal.SIGKILL)  # no chance to stop its servers
        holder.wait()
    assert all(alive(pid) for pid in old)

    with Servers(folder, *URLS, postgres=True, redis=True, durable=False) as servers:
        assert not any(alive(pid) for pid in old)
        with psycopg.connect(servers.admin_url, connect_timeout=5) as conn:
            assert conn.execute('SELECT 1').fetchone() == (1,)
        assert redis.Redis.from_url(servers.redis_url(), socket_timeout=5).ping()
        new = servers.postgres.pids()[:1] + servers.redis.pids()
    assert not any(alive(pid) for pid in new)
