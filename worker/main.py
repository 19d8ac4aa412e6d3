"""The entry point of the celery command (worker, beat, flower):
`celery -A worker.main worker`."""
from web import create_app

flask_app = create_app()
celery = flask_app.extensions['celery']
