"""Worker chaos: jobs keep coming while worker processes are SIGKILLed again
and again (pool children and the main process, restarted each time). Every
accepted job is applied exactly once, soon after the last kill. On the
session's broker and again on RabbitMQ (tests/e2e/brokers.py)."""
import os
import random
import signal
import threading
import time
from collections import Counter

from cli.processes import children as pool_children
from tests.e2e.brokers import ON_EACH_BROKER

pytestmark = ON_EACH_BROKER
DRAIN_DEADLINE_SECONDS = 120


class Killer(threading.Thread):
    """SIGKILLs a pool child or the main worker process every `every` seconds
    until stopped, restarting the worker when its main process died."""

    def __init__(self, svc, every):
        super().__init__(daemon=True)
        self.svc, self.every = svc, every
        self.kills = Counter()
        self.stopping = threading.Event()
        self.rng = random.Random(7)
        self.last_kill = time.monotonic()

    def run(self):
        while not self.stopping.wait(self.every * self.rng.uniform(0.5, 1.5)):
            worker = self.svc.processes['worker'].popen
            children = pool_children(worker.pid)
            if children and self.rng.random() < 0.6:
                os.kill(self.rng.choice(children), signal.SIGKILL)
                self.kills['pool child'] += 1
            else:
                os.kill(worker.pid, signal.SIGKILL)
                worker.wait()
                self.kills['main process'] += 1
                self.svc.processes.pop('worker').stop()
                self._wait_ready(self.svc.start('worker').popen.pid)
            self.last_kill = time.monotonic()

    def _wait_ready(self, pid, timeout=30):
        """Give a restarted worker the time to start its pool before the next kill."""
        deadline = time.monotonic() + timeout
        while not pool_children(pid) and time.monotonic() < deadline:
            time.sleep(0.1)


def test_jobs_survive_repeated_worker_kills(clean, big):
    svc = clean
    count = 10_000 if big else 2_000
    svc.stop('worker')
    svc.start('worker', WORKER_SWEEP_AGE_SECONDS='5', WORKER_STALE_RUNNING_SECONDS='5')
    beat = svc.start('beat', WORKER_SWEEP_EVERY_SECONDS='1', WORKER_SWEEP_AGE_SECONDS='5',
                     WORKER_STALE_RUNNING_SECONDS='5',
                     BEAT_SCHEDULE_FILE=os.path.join(svc.log_dir, 'chaos-beat-schedule'))
    users = [svc.run('user.create', {'username': f'c{i}', 'email': f'c{i}@example.com',
                                     'password': 'long enough'})['result']['id'] for i in range(2)]
    genre_id = svc.run('genre.create', {'name': 'seed', 'description': 'seed'})['result']['id']
    requests_ = []
    for i in range(count):
        if i % 10 < 5:
            requests_.append(('genre.create', {'name': f'chaos-{i}', 'description': 'chaos'}))
        elif i % 10 < 8:
            requests_.append(('user.credit', {'user_id': users[i % 2], 'amount': i % 9 + 1}))
        else:
            requests_.append(('artist.create', {'name': f'chaos-{i}', 'description': 'chaos',
                                                'genre_id': genre_id}))

    killer = Killer(svc, every=1.5)
    killer.start()
    try:
        responses = svc.post_many(requests_, threads=16)
        time.sleep(3)  # a few more kills while the backlog drains
    finally:
        killer.stopping.set()
        killer.join()
    last_kill = killer.last_kill
    accepted = [(kind, payload, r.json()['id']) for (kind, payload), r in zip(requests_, responses)
                if r.status_code == 202]
    assert len(accepted) == count, Counter(r.status_code for r in responses)

    ids = [job_id for _, _, job_id in accepted]
    deadline = last_kill + DRAIN_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        unfinished = svc.sql("SELECT count(*) FROM jobs WHERE id = ANY(:ids) "
                             "AND status NOT IN ('succeeded', 'failed')", ids=ids)[0][0]
        if not unfinished:
            break
        time.sleep(0.5)
    drained = time.monotonic() - last_kill
    svc.stop('beat')

    statuses = dict(svc.sql('SELECT status, count(*) FROM jobs WHERE id = ANY(:ids) GROUP BY status',
                            ids=ids))
    names = Counter(name for (name,) in svc.sql(
        "SELECT name FROM genre WHERE description = 'chaos' "
        "UNION ALL SELECT name FROM artist WHERE description = 'chaos'"))
    wanted = Counter(p['name'] for kind, p, _ in accepted if kind != 'user.credit')
    duplicates = sum(n - 1 for n in names.values() if n > 1)
    lost = sum(1 for name in wanted if name not in names)
    credits = dict(svc.sql('SELECT id, credit_score FROM users WHERE id = ANY(:ids)', ids=users))
    expected = Counter()
    for kind, payload, _ in accepted:
        if kind == 'user.credit':
            expected[payload['user_id']] += payload['amount']
    print(f'\nworker chaos: accepted={len(accepted)} applied={statuses.get("succeeded", 0)} '
          f'duplicates={duplicates} lost={lost} kills={dict(killer.kills)} '
          f'seconds_to_drain_after_last_kill={drained:.1f}')
    assert statuses == {'succeeded': len(accepted)}, (statuses, beat.log()[-3000:])
    assert duplicates == 0 and lost == 0 and set(names) == set(wanted)
    assert credits == {u: expected[u] for u in users}
    assert drained < DRAIN_DEADLINE_SECONDS
    assert killer.kills['main process'] and killer.kills['pool child']
