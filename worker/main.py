"""The entry point of the celery command (worker, beat, flower):
`celery -A worker.main worker`."""
import gc
import logging

from celery import signals
from celery.apps import worker as celery_worker
from celery.utils.log import get_multiprocessing_logger

from service import brokers, create_app, logs
from worker import init_tasks
from worker.broker import TRANSPORT

flask_app = create_app(name='worker')
celery = init_tasks(flask_app)


@signals.celeryd_init.connect
def _worker_transport(conf=None, **_):
    """The worker process (only it) consumes through worker.broker's transport,
    which survives a lost Redis connection (RabbitMQ: kombu's own)."""
    if brokers.kind(conf.broker_url) == brokers.REDIS:
        conf.broker_transport = TRANSPORT


@signals.beat_init.connect
def _due_pass(**_):
    """Beat (every beat process) runs the due pass: scheduled and periodic jobs."""
    from worker import due
    due.start(flask_app)


@signals.setup_logging.connect
def _logging(loglevel=None, **_):
    """Celery's processes (worker, beat, Flower) log through logs.py, Celery's
    own records included (a receiver here means Celery installs no handler)."""
    installed = logs.configure(flask_app.config, level=loglevel or logging.INFO, force=True)
    multiprocessing = get_multiprocessing_logger()
    if multiprocessing is not None:  # billiard's pool logger does not propagate
        multiprocessing.handlers = [installed]
        multiprocessing.setLevel(logging.ERROR)


@signals.celeryd_init.connect
def _json_only(instance=None, **_):
    """With JSON logs, the worker writes nothing else: no startup banner, and
    its shutdown notices (written from a signal handler) as JSON lines."""
    if flask_app.config['LOG_FORMAT'] == 'json':
        instance.quiet = True
        celery_worker.safe_say = logs.say_json


@signals.celeryd_after_setup.connect
def _redirect_prints(conf=None, **_):
    # What Celery does when it sets up logging itself: a stray print is a log line.
    if conf.worker_redirect_stdouts:
        celery.log.redirect_stdouts(conf.worker_redirect_stdouts_level)


@signals.worker_process_init.connect
def _freeze_startup_objects(**_):
    """A pool process keeps what loading the app made out of the collector's
    full passes, as the web does (gunicorn.conf.py): a group's hundreds of
    payloads set such passes off, and each scanned every object of the app."""
    gc.freeze()
