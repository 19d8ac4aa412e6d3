"""The Celery app every process shares, and publishing recorded jobs.

The messages carry job ids only (JSON); the ledger holds the rest. Processes
that only publish (web) know the tasks by name; the worker registers them
(worker/__init__.py). A job is published only once it is recorded and
committed; when the broker refuses, what was recorded is taken back, so
nothing is left half-accepted.
"""
from celery import Celery, Task
from flask import current_app

import ledger
from service import brokers
from service.celery_config import celery_config

EXTENSION = 'celery'
SWEEP_TASK = 'jobs.sweep'
PRUNE_TASK = 'jobs.prune'


def init_celery(app):
    """Create the app's Celery app (app.extensions['celery']), whose tasks run
    inside the app's context, with beat's schedule."""
    class AppTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.import_name, task_cls=AppTask)
    celery.conf.update(celery_config(app.config))
    celery.conf.beat_schedule = {
        **(celery.conf.beat_schedule or {}),  # a CELERY_BEAT_SCHEDULE given keeps its entries
        'sweep': {'task': SWEEP_TASK, 'schedule': app.config['WORKER_SWEEP_EVERY_SECONDS']},
        'prune': {'task': PRUNE_TASK, 'schedule': app.config['WORKER_PRUNE_EVERY_SECONDS']},
    }
    celery.set_default()
    celery.publish_options = brokers.publish_options(app.config)
    app.extensions[EXTENSION] = celery
    return celery


def publish(celery, job_ids, kind, per_message=1, connection=None):
    """Send the job ids over one connection (`connection` if given), one
    message per job, or per group of `per_message` jobs that the worker
    applies together; to the kind's own queue, with its priority, when it
    has them.

    Raises kombu.exceptions.OperationalError when the broker is unreachable
    (RabbitMQ: or does not confirm within CELERY_PUBLISH_TIMEOUT)."""
    from tasks import REGISTRY
    job_ids = list(job_ids)
    options = {**getattr(celery, 'publish_options', {}),
               **(REGISTRY[kind].routing if kind in REGISTRY else {})}
    producer = celery.amqp.Producer(connection, auto_declare=False) if connection else None
    with celery.producer_or_acquire(producer) as producer:
        for start in range(0, len(job_ids), per_message):
            group = job_ids[start:start + per_message]
            args = [group if len(group) > 1 else group[0]]
            celery.send_task(kind, args=args, producer=producer,
                             argsrepr=_args_repr(args), kwargsrepr='{}', **options)


def _args_repr(args, limit=1024):
    """The message's args as Celery's saferepr shows them (logs, Flower): job
    ids are ints, so plain repr says the same for a fraction of its cost."""
    shown = repr(args)
    return shown if len(shown) <= limit else shown[:limit - 3] + '...'


def queues(celery):
    """Every queue the jobs go to: the default one and the kinds' own."""
    from tasks import REGISTRY
    return [celery.conf.task_default_queue,
            *sorted({k.queue for k in REGISTRY.values() if k.queue}
                    - {celery.conf.task_default_queue})]


def publish_recorded(by_kind):
    """Publish committed jobs, {kind: ids}. If the broker refuses, they are
    all withdrawn from the ledger and the broker's error raised, with
    `taken`: the ids a worker had taken already, which stay accepted (a
    publish that timed out waiting for the broker's answer, the message
    delivered all the same: a network cut at that moment)."""
    app = current_app
    try:
        for kind, ids in by_kind.items():
            publish(app.extensions[EXTENSION], ids, kind,
                    per_message=app.config['WORKER_BATCH_SIZE'])
    except Exception as error:
        recorded = [job_id for ids in by_kind.values() for job_id in ids]
        error.taken = set(recorded) - ledger.withdraw(_session(), recorded)
        raise


def publish_retried(retried):
    """Publish a job queued again by ledger.requeue_failed; if the broker
    refuses, the job is put back as it was (failed, retriable again) and the
    broker's error raised."""
    try:
        publish(current_app.extensions[EXTENSION], [retried.job_id], retried.kind)
    except Exception:
        ledger.restore_failed(_session(), retried)
        raise


def _session():
    return current_app.extensions['pg'].pool.connection().session
