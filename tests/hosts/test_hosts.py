"""The service across hosts (tests/hosts/conftest.py): the pipeline over two
web hosts and two worker hosts, then four network faults. Under each, every
accepted job is applied exactly once, nothing refused is applied, no answer
is a 500, and the recovery time is printed (-s) with the run's figures.

CI sizes by default (cuts of 8 s); `--big`: the issue's 30 s cuts and longer
runs (`python3 manage.py test --q tests/hosts --big -s`)."""
import os
import signal
import time
from collections import Counter
from typing import NamedTuple

import requests

from tests.e2e.service import FLOWER_AUTH
from tests.faults.assessment import assess, wait_finished
from tests.faults.stream import get_health, make_user, unique_tag
from tests.hosts.stream import HostsStream


class Size(NamedTuple):
    warmup: float  # seconds of stream before the fault
    fault: float  # seconds the fault lasts
    after: float  # seconds of stream once it is over
    burst: int  # jobs POSTed in two batches just before the fault
    drain: float  # seconds, past the stream, for every accepted job to finish


SMALL = Size(warmup=3, fault=8, after=4, burst=200, drain=90)
BIG = Size(warmup=10, fault=30, after=15, burst=1000, drain=240)


def size_of(big):
    return BIG if big else SMALL


def known_jobs(hosts):
    """Jobs of the earlier tests (the topology's ledger is the module's)."""
    return {job_id for (job_id,) in hosts.sql('SELECT id FROM jobs')}


def check_exact(figures, logs=''):
    """Every accepted job applied once, nothing else applied, no answer but
    202 or a 503 with Retry-After and the envelope, the credit exact."""
    f = figures
    assert not f.other_answers, (f'answers other than 202/503: {dict(f.other_answers)}', logs)
    assert not f.bad_503, f'503 without Retry-After or the error envelope: {f.bad_503}'
    assert f.statuses == Counter({'succeeded': f.accepted}), (dict(f.statuses), logs)
    assert f.duplicates == 0 and f.lost == 0 and f.extra == 0, (f, logs)
    assert f.credit_found == f.credit_expected, (f.credit_found, f.credit_expected)
    assert not f.unrecorded_ids, f'jobs in the ledger that no 202 answered: {f.unrecorded_ids}'


def drain_seconds(hosts, ids, since_wall):
    """Seconds from `since_wall` (time.time()) until the last of `ids` finished."""
    last = hosts.sql('SELECT max(finished_at) FROM jobs WHERE id = ANY(:ids)', ids=ids)[0][0]
    return max(0.0, last.timestamp() - since_wall) if last else -1.0


def applied_by(hosts, host):
    """Messages a worker host's processes applied (its log's succeeded lines)."""
    return sum(p.log().count('succeeded in') for name, p in hosts.processes.items()
               if name.startswith(host + '-worker'))


def report(name, figures, **more):
    line = figures.line(name, **more)
    print('\n' + line)
    return line


def run_stream(hosts, seconds, fault=None, size=None, threads=2):
    """Stream jobs to both web hosts for `seconds` (with `fault`: warmup, a
    burst, fault() -> mend, after); wait for every accepted job; return the
    stream, the user, the jobs known before, and the fault's times."""
    known = known_jobs(hosts)
    user_id, user_job = make_user(hosts)
    stream = HostsStream(hosts, user_id, unique_tag('hosts'), threads=threads).start()
    times = {}
    try:
        if fault is None:
            time.sleep(seconds)
        else:
            time.sleep(size.warmup)
            burst = stream.burst(size.burst)
            assert [a.status for a in burst] == [202, 202], [a.body for a in burst]
            mend = fault()
            times['down'] = time.monotonic()  # from here the fault surely holds
            # One POST to each web host from the start of the fault (the
            # stream's own may still be waiting on a connection cut).
            times['probes'] = [stream.post_to(url, 1000 + n)
                               for n, url in enumerate(hosts.web_urls)]
            time.sleep(max(0.0, times['down'] + size.fault / 2 - time.monotonic()))
            times['health'] = [get_health_of(hosts, url) for url in hosts.web_urls]
            time.sleep(max(0.0, times['down'] + size.fault - time.monotonic()))
            times['up'] = time.monotonic()
            times['up_wall'] = time.time()
            mend()
            time.sleep(size.after)
    finally:
        stream.stop()
    ids = [i for a in stream.answers for i in a.job_ids]
    unfinished = wait_finished(hosts, ids, (size or SMALL).drain)
    assert unfinished == 0, (f'{unfinished} accepted jobs unfinished', hosts.logs())
    return stream, user_id, known | {user_job}, times


def get_health_of(hosts, url):
    saved, hosts.url = hosts.url, url
    try:
        return get_health(hosts)
    finally:
        hosts.url = saved


def test_jobs_posted_to_both_web_hosts_are_applied_once_by_both_worker_hosts(hosts):
    applied_before = {h: applied_by(hosts, h) for h in ('worker1', 'worker2')}
    started = time.monotonic()
    stream, user_id, known, _ = run_stream(hosts, 6, threads=4)
    burst = stream.burst(400)  # forty messages: both worker hosts take some
    assert [a.status for a in burst] == [202, 202]
    ids = [i for a in stream.answers for i in a.job_ids]
    assert wait_finished(hosts, ids, 90) == 0, hosts.logs()
    seconds = time.monotonic() - started
    figures = assess(hosts, stream, user_id, float('inf'), 0, known_job_ids=known)
    applied = {h: applied_by(hosts, h) - applied_before[h] for h in ('worker1', 'worker2')}
    report('hosts pipeline', figures, jobs_per_second=f'{figures.accepted / seconds:.0f}',
           messages_by_worker_host=applied)
    check_exact(figures, hosts.logs())
    assert figures.accepted >= 400
    for url in hosts.web_urls:
        assert any(a.status == 202 for a in stream.answers_of(url)), f'{url} accepted nothing'
    assert all(applied.values()), f'a worker host applied nothing: {applied}'

    workers = requests.get(hosts.flower_url + '/api/workers?refresh=1',
                           auth=tuple(FLOWER_AUTH.split(':')), timeout=30).json()
    assert {'celery@worker1', 'celery@worker2'} <= set(workers), sorted(workers)


def test_a_worker_host_cut_from_the_database_host(hosts, big):
    size = size_of(big)
    network = hosts.network

    def fault():
        network.cut('worker1', 'db')
        return lambda: network.mend('worker1')

    stream, user_id, known, times = run_stream(hosts, 0, fault, size)
    before = [i for a in stream.answers if a.ended <= times['down'] for i in a.job_ids]
    figures = assess(hosts, stream, user_id, times['down'], times['up'], known_job_ids=known)
    report('worker host cut from the database', figures, cut_seconds=size.fault,
           seconds_to_drain_after_mend=f'{drain_seconds(hosts, before, times["up_wall"]):.1f}',
           answers=dict(Counter(a.status for a in stream.answers)))
    check_exact(figures, hosts.logs())
    # The web hosts never lost the database: everything was accepted.
    assert set(Counter(a.status for a in stream.answers)) == {202}
    dead = [n for n, p in hosts.processes.items() if p.popen.poll() is not None]
    assert not dead, (dead, hosts.logs())


def test_a_web_host_cut_from_the_broker_host(hosts, big):
    size = size_of(big)
    network = hosts.network
    cut_url = hosts.web_urls[1]

    def fault():
        network.cut('web2', 'broker')
        return lambda: network.mend('web2')

    stream, user_id, known, times = run_stream(hosts, 0, fault, size)
    figures = assess(hosts, stream, user_id, times['down'], times['up'], known_job_ids=known)
    during = lambda url: Counter(a.status for a in stream.answers_of(url)  # noqa: E731
                                 if a.started >= times['down'] and a.ended <= times['up'])
    first_202 = min((a.ended for a in stream.answers_of(cut_url)
                     if a.status == 202 and a.started >= times['up']), default=None)
    report('web host cut from the broker', figures, cut_seconds=size.fault,
           cut_host_answers_during=dict(during(cut_url)),
           cut_host_post_seconds=f'{times["probes"][1].ended - times["probes"][1].started:.1f}',
           other_host_answers_during=dict(during(hosts.web_urls[0])),
           seconds_to_accept_again=(f'{first_202 - times["up"]:.1f}' if first_202 else None))
    timeline = [(round(a.started - times['down'], 1), round(a.ended - times['down'], 1), a.status)
                for a in stream.answers_of(cut_url)
                if a.ended >= times['down'] - 0.3 and a.started <= times['up'] + 1]
    check_exact(figures, hosts.logs())
    # Every POST to the cut host made while the cut lasted: 503 (Retry-After
    # checked with the envelope); the other host: 202.
    assert during(cut_url) and set(during(cut_url)) == {503}, (during(cut_url), timeline)
    assert set(during(hosts.web_urls[0])) == {202}, during(hosts.web_urls[0])
    cut_health, other_health = times['health'][1], times['health'][0]
    assert cut_health.status == 503 and cut_health.retry_after, cut_health
    assert cut_health.body['checks'] == {'postgres': 'ok', 'redis': 'down'}, cut_health.body
    assert other_health.status == 200, other_health
    assert first_202 is not None, 'the cut web host accepted nothing once mended'


def test_every_process_of_a_worker_host_killed_at_once(hosts, big):
    size = size_of(big)
    network = hosts.network
    killed = {}

    def fault():
        pids = network.pids('worker1')
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        killed['pids'] = len(pids)
        hosts.processes.pop('worker1-worker').stop()
        return lambda: hosts.start_on('worker1', 'worker')  # the host comes back

    stream, user_id, known, times = run_stream(hosts, 0, fault, size)
    before = [i for a in stream.answers if a.ended <= times['down'] for i in a.job_ids]
    figures = assess(hosts, stream, user_id, times['down'], times['up'], known_job_ids=known)
    report('worker host killed', figures, processes_killed=killed['pids'],
           down_seconds=size.fault,
           seconds_to_drain_after_kill=(
               f'{drain_seconds(hosts, before, times["up_wall"] - size.fault):.1f}'))
    check_exact(figures, hosts.logs())
    assert killed['pids'] >= 3  # the worker's main process and its pool
    hosts.wait_workers()


def test_a_slow_lossy_database_link(hosts, big):
    """100 ms of delay and 1% loss on every packet the database host sends,
    for a whole run: throughput reported against the clean link's."""
    seconds = 20 if big else 6
    figures_of = {}
    for link in ('clean', 'slow'):
        if link == 'slow':
            hosts.slow_db(delay_ms=100, loss_percent=1)
        try:
            started, started_wall = time.monotonic(), time.time()
            stream, user_id, known, _ = run_stream(hosts, seconds, threads=8)
            ids = [i for a in stream.answers for i in a.job_ids]
            took = drain_seconds(hosts, ids, started_wall) or (time.monotonic() - started)
            figures = assess(hosts, stream, user_id, float('inf'), 0, known_job_ids=known)
        finally:
            hosts.mend_db()
        figures_of[link] = figures
        report(f'database link {link}', figures,
               delay_ms=100 if link == 'slow' else 0, loss_percent=1 if link == 'slow' else 0,
               jobs_per_second=f'{figures.accepted / took:.1f}', seconds=f'{took:.1f}',
               made_by='tc netem' if hosts.netem else 'relay delay + nftables drops')
        check_exact(figures, hosts.logs())
        assert figures.accepted > 0 and set(Counter(a.status for a in stream.answers)) == {202}
