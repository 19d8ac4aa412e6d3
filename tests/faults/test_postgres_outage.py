"""PostgreSQL stopped for a while under a steady stream of jobs: every POST
made while it is down answers 503 with Retry-After (never 500), the worker
keeps retrying the jobs it holds (none is dropped to the sweep), and once
PostgreSQL is back every accepted job is applied exactly once."""
from tests.faults.outage import Size, check_run, report, run_with_fault

SMALL = Size(warmup=5, outage=20, after=10, threads=1, burst=200, drain_deadline=30,
             recovery_grace=5)
BIG = Size(warmup=15, outage=60, after=30, threads=2, burst=1000, drain_deadline=120,
           recovery_grace=5)


def test_postgres_outage_loses_nothing_and_applies_nothing_twice(fault_service, big):
    svc = fault_service
    run = run_with_fault(svc, BIG if big else SMALL, 'pg',
                         take_down=lambda: svc.postgres.stop('fast'),
                         bring_back=svc.postgres.start)
    report('postgres outage', run)
    check_run(svc, run, 'postgres')
    # The worker rides the outage out by retrying its jobs: none may fail its
    # task (Celery would ack the message, leaving the job to the sweep).
    assert run.dropped == 0, f'{run.dropped} job tasks failed while PostgreSQL was down'
