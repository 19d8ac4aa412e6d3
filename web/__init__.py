"""The HTTP front: `create_app()` builds the whole service app (config,
database, Celery, blueprints); gunicorn serves `web:create_app()`."""
import os

import config_check
import logs
from app import get_or_create_app
from pg import init_db
from web.auth import init_auth
from web.errors import init_errors
from web.request_id import init_request_id
from worker import init_celery


def create_app(config=None):
    """The service's Flask app; `config` overrides settings (tests).

    Raises pg.exceptions.ConfigError when SQLALCHEMY_DEFAULT is missing, and
    config_check.UnknownSettingError (production mode) for a prefixed
    variable that nothing reads."""
    from web import jobs, metrics, openapi, system
    app = get_or_create_app('web', config=config)
    logs.configure(app.config)
    config_check.check(app.config, os.environ, config)
    init_request_id(app)
    init_db(app)
    init_celery(app)
    init_errors(app)
    init_auth(app)
    app.register_blueprint(jobs.bp)
    jobs.init_group_commit(app)
    app.register_blueprint(system.bp)
    app.register_blueprint(openapi.bp)
    metrics.init_metrics(app)
    return app
