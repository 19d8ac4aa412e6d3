"""The HTTP front: `create_app()` is the service's app (service.create_app)
with the API's blueprints on top; gunicorn serves `web:create_app()`."""
from service import create_app as create_service_app
from web.auth import init_auth
from web.errors import init_errors
from web.fast_paths import init_fast_paths
from web.group_commit import init_group_commit
from web.json_response import init_json_response
from web.rate_limits import init_rate_limits
from web.reads import init_reads
from web.request_id import init_request_id
from web.request_limits import init_request_limits
from web.sessions import init_sessions


def create_app(config=None):
    """The web front's Flask app; `config` overrides settings (tests).

    Raises service.errors.ConfigError or pg.exceptions.ConfigError for a
    configuration the service cannot run with."""
    from web import jobs, metrics, openapi, system
    app = create_service_app(config, name='web')
    init_json_response(app)
    init_sessions(app)
    init_request_id(app)
    init_errors(app)
    init_request_limits(app)
    init_auth(app)
    app.register_blueprint(jobs.bp)
    init_group_commit(app)
    init_reads(app)
    app.register_blueprint(system.bp)
    app.register_blueprint(openapi.bp)
    metrics.init_metrics(app)
    init_rate_limits(app)
    init_fast_paths(app)  # last: it reads what the others set up
    return app
