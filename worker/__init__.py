"""The Celery side: one Celery task per job kind, each run inside the Flask
app context by `run_job`; `publish` sends a recorded job to the broker."""
from celery import Celery, Task

from tasks import load_all
from worker.config import celery_config
from worker.execution import run_job

EXTENSION = 'celery'


def init_celery(app):
    """Create the app's Celery app (stored in app.extensions['celery']) with
    a task for every registered job kind."""
    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.import_name, task_cls=FlaskTask)
    celery.conf.update(celery_config(app.config))
    for name in load_all():
        # max_retries=None here: Celery's retry(max_retries=None) means "the
        # task's limit" (3 by default), not "no limit". run_job bounds its
        # attempts itself (WORKER_MAX_ATTEMPTS) and waits out an unreachable
        # database for as long as it takes.
        celery.task(name=name, bind=True, shared=False, max_retries=None)(run_job)

    @celery.task(name='jobs.sweep', shared=False)
    def sweep():
        from worker.sweep import republish_stale
        return republish_stale(app.config['WORKER_SWEEP_AGE_SECONDS'],
                               app.config['WORKER_STALE_RUNNING_SECONDS'])

    celery.conf.beat_schedule = {
        **(celery.conf.beat_schedule or {}),  # a CELERY_BEAT_SCHEDULE given keeps its entries
        'sweep': {'task': 'jobs.sweep', 'schedule': app.config['WORKER_SWEEP_EVERY_SECONDS']},
    }
    celery.set_default()
    app.extensions[EXTENSION] = celery
    return celery


def publish(celery, job_ids, kind, per_message=1):
    """Send the job ids over one connection (JSON: ids only), one message per
    job, or per group of `per_message` jobs that the worker applies together.

    Raises kombu.exceptions.OperationalError when the broker is unreachable."""
    task = celery.tasks[kind]
    job_ids = list(job_ids)
    with celery.producer_or_acquire() as producer:
        for start in range(0, len(job_ids), per_message):
            group = job_ids[start:start + per_message]
            task.apply_async(args=[group if len(group) > 1 else group[0]], producer=producer)
