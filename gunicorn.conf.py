"""gunicorn reads this file from its working directory (the project's root,
where the Procfile's web command runs): its own lines (start, workers, errors)
are then written in LOG_FORMAT, as the app's are (logs.py)."""
import gc
import time

from service import logs

# On SIGTERM (a deploy), requests in flight get this long to finish; compose's
# stop_grace_period of web is longer (tests/unit/test_compose.py).
graceful_timeout = 30
logger_class = logs.gunicorn_logger_class()

# Twice the app's limits (web/request_limits.py), the request line at gunicorn's
# largest finite limit: a request between the two is answered by the app, in
# the JSON envelope (414, 431); only one past these meets gunicorn's HTML answer.
limit_request_line = 8190
limit_request_fields = 200
limit_request_field_size = 16380


def post_request(worker, req, environ, resp):
    """Let the other connections' requests go before this connection's next
    one. On loopback (or any fast client) the next request of a keep-alive
    connection is often read before the greenlet would block, so a busy gevent
    worker served one connection on and on while the others waited: p99 of
    100-200 ms with 2-4 connections at 0.2 ms a request. time.sleep is gevent's
    under the gevent worker (a switch through the hub); elsewhere it is a no-op."""
    time.sleep(0)


def post_worker_init(worker):
    """Keep what loading the app made (about 110,000 objects: Flask, SQLAlchemy,
    Celery, the schemas) out of the collector's full passes. Each pass scanned
    them all: 50-85 ms with every request waiting, twice in 10 s at half the
    single peak after a batch scenario had stirred the heap (p99 to seen
    `succeeded` 138 ms). Frozen, a full pass scans only what requests made."""
    gc.freeze()
