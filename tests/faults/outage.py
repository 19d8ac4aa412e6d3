"""One fault test's run: a stream of jobs, a server taken down for a while
then brought back, and the figures checked (`run_with_fault`, `check_run`).
The tests run small in CI; `pytest --big` lengthens stream and outage. Each
prints one line of figures (shown with -s, or when the test fails)."""
import time
from typing import NamedTuple, Optional

from tests.faults.assessment import (Figures, assess, check, dropped_count, service_logs,
                                     swept_count, wait_finished)
from tests.faults.stream import Answer, JobStream, get_health, make_user, unique_tag


class Size(NamedTuple):
    warmup: float  # seconds of stream before the fault
    outage: float  # seconds the faulted server stays down
    after: float  # seconds of stream once it is back
    threads: int  # client threads of the stream
    burst: int  # jobs POSTed in two batches just before the fault (a broker backlog)
    drain_deadline: float  # seconds, after the stream ends, for every accepted job to finish
    recovery_grace: float  # seconds after the restart past which every POST must be 202


class Run(NamedTuple):
    figures: Figures
    seconds_to_drain: float  # from the restart until every job accepted before the fault finished
    seconds_to_accept_again: Optional[float]  # from the restart to the first 202
    refused_after_grace: int  # 503s to POSTs started recovery_grace seconds after the restart
    unfinished: int  # accepted jobs not finished by the drain deadline
    swept: int  # jobs the recovery sweep published again
    dropped: int  # job tasks that failed, their message acked (only the sweep finds them)
    seconds: float  # wall time of the stream and the drain
    health_while_down: Answer  # GET /health halfway through the outage


def run_with_fault(svc, size, tag_prefix, take_down, bring_back):
    """Stream jobs; after `size.warmup` seconds POST a burst then call
    `take_down()`; `size.outage` seconds later call `bring_back()` (GET
    /health halfway); stream `size.after` seconds more, then wait for every
    accepted job to finish."""
    started = time.monotonic()
    user_id, user_job = make_user(svc)
    stream = JobStream(svc, user_id, unique_tag(tag_prefix), threads=size.threads).start()
    try:
        time.sleep(size.warmup)
        burst = stream.burst(size.burst)
        assert [a.status for a in burst] == [202, 202], [a.body for a in burst]
        take_down()
        down_from = time.monotonic()
        time.sleep(size.outage / 2)
        health = get_health(svc)
        time.sleep(max(0.0, down_from + size.outage - time.monotonic()))
        down_until = time.monotonic()
        bring_back()
        back, back_wall = time.monotonic(), time.time()
        time.sleep(size.after)
    finally:
        stream.stop()

    ids = [i for a in stream.answers for i in a.job_ids]
    unfinished = wait_finished(svc, ids, size.drain_deadline)
    before = [i for a in stream.answers if a.ended <= down_from for i in a.job_ids]
    last_finished = svc.sql('SELECT max(finished_at) FROM jobs WHERE id = ANY(:ids)',
                            ids=before)[0][0]
    seconds_to_drain = max(0.0, last_finished.timestamp() - back_wall) if last_finished else -1
    first_202 = min((a.ended for a in stream.answers if a.status == 202 and a.started >= back),
                    default=None)
    refused_after_grace = sum(1 for a in stream.answers
                              if a.started >= back + size.recovery_grace and a.status != 202)
    figures = assess(svc, stream, user_id, down_from, down_until, known_job_ids=[user_job])
    return Run(figures, seconds_to_drain, first_202 and first_202 - back, refused_after_grace,
               unfinished, swept_count(svc), dropped_count(svc), time.monotonic() - started,
               health)


def report(name, run):
    line = run.figures.line(
        name, seconds_to_drain=f'{run.seconds_to_drain:.1f}',
        seconds_to_accept_again=(f'{run.seconds_to_accept_again:.1f}'
                                 if run.seconds_to_accept_again is not None else None),
        extra=run.figures.extra, failures=sum(run.figures.other_answers.values()),
        swept=run.swept,
        dropped=run.dropped,
        down_answers=dict(run.figures.down_answers),
        run_seconds=f'{run.seconds:.1f}')
    print('\n' + line)
    return line


def check_run(svc, run, down_name):
    logs = service_logs(svc)
    dead = {name: p.popen.returncode for name, p in svc.processes.items()
            if p.popen.poll() is not None}
    if dead:
        print(logs)  # the assertion's own text is cut short by pytest
    assert not dead, (f'service processes exited (name: code): {dead}', logs)
    health = run.health_while_down
    assert health.status == 503 and health.retry_after, health
    assert health.body['checks'][down_name] == 'down', health
    assert run.unfinished == 0, (f'{run.unfinished} accepted jobs unfinished', logs)
    check(run.figures, logs=logs)
    assert run.seconds_to_accept_again is not None, ('no POST accepted after the restart', logs)
    assert run.refused_after_grace == 0, (
        f'{run.refused_after_grace} POSTs refused long after the restart', logs)
