"""gunicorn reads this file from its working directory (the project's root,
where the Procfile's web command runs): its own lines (start, workers, errors)
are then written in LOG_FORMAT, as the app's are (logs.py)."""
from service import logs

# On SIGTERM (a deploy), requests in flight get this long to finish; compose's
# stop_grace_period of web is longer (tests/unit/test_compose.py).
graceful_timeout = 30
logger_class = logs.gunicorn_logger_class()
