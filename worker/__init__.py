"""The Celery entry (worker, beat, Flower) and the job runner: one Celery task
per job kind, each run by `run_job` inside the app's context, and the
recovery sweep and the pruning, which beat runs itself (worker.beat)."""
from service.queue import PRUNE_TASK, SWEEP_TASK
from tasks import load_all
from worker.execution import JobsFailed, run_job


def init_tasks(app):
    """Register a task for every job kind and the sweep on the app's Celery
    app (built by service.create_app); return the Celery app."""
    celery = app.extensions['celery']
    for name in load_all():
        # max_retries=None here: Celery's retry(max_retries=None) means "the
        # task's limit" (3 by default), not "no limit". run_job bounds its
        # attempts itself (WORKER_MAX_ATTEMPTS) and waits out an unreachable
        # database for as long as it takes. JobsFailed (every job of the message
        # failed, recorded) is an expected failure: logged without a traceback,
        # the message acked (acks_on_failure_or_timeout), the task FAILURE in Flower.
        celery.task(name=name, bind=True, shared=False, max_retries=None,
                    throws=(JobsFailed,))(run_job)

    @celery.task(name=SWEEP_TASK, shared=False)
    def sweep():
        from worker.sweep import recover
        return recover(app.config)

    @celery.task(name=PRUNE_TASK, shared=False)
    def prune():
        from worker.prune import prune_expired
        return prune_expired(app.config)

    celery.conf.beat_scheduler = 'worker.beat:Scheduler'
    return celery
