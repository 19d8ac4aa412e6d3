"""Redis killed (SIGKILL: the messages it held are lost) under a steady
stream of jobs, then started again on the same port: every POST made while
it is down answers 503 with Retry-After (never 500), and once it is back
every accepted job is applied exactly once, those whose messages died with
Redis included: the beat's recovery sweep publishes them again.

TEST_BROKER=rabbitmq: the same with a RabbitMQ node of the test's own,
killed at once; its quorum queue keeps the messages (on disk), so the
sweep has nothing it must recover."""
from tests.faults.outage import Size, check_run, report, run_with_fault
from tests.settings import TEST_BROKER

SMALL = Size(warmup=5, outage=10, after=10, threads=1, burst=600, drain_deadline=30,
             recovery_grace=5)
BIG = Size(warmup=15, outage=30, after=30, threads=2, burst=1000, drain_deadline=120,
           recovery_grace=5)


def test_redis_restart_loses_nothing_and_applies_nothing_twice(fault_service, big):
    svc = fault_service
    run = run_with_fault(svc, BIG if big else SMALL, 'redis',
                         take_down=svc.redis.stop, bring_back=svc.redis.start)
    report(f'{TEST_BROKER} restart', run)
    check_run(svc, run, TEST_BROKER)
    if TEST_BROKER == 'redis':
        assert run.swept > 0, 'no job was swept up: the kill lost no message to recover'
