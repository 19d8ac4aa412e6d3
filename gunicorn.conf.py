"""gunicorn reads this file from its working directory (the project's root,
where the Procfile's web command runs): its own lines (start, workers, errors)
are then written in LOG_FORMAT, as the app's are (logs.py)."""
from service import logs

logger_class = logs.gunicorn_logger_class()
