"""The entry point of the celery command (worker, beat, flower):
`celery -A worker.main worker`."""
from celery import signals

from web import create_app
from worker.broker import TRANSPORT

flask_app = create_app()
celery = flask_app.extensions['celery']


@signals.celeryd_init.connect
def _worker_transport(conf=None, **_):
    """The worker process (only it) consumes through worker.broker's transport,
    which survives a lost Redis connection."""
    conf.broker_transport = TRANSPORT
