"""The composition root: `create_app(config)` builds the settings, logging,
the database and the Celery app of any process of the service, and nothing
of HTTP. The web front (web/) adds its blueprints on top of it; the Celery
entry (worker/) adds the tasks.

Its imports are made inside the functions: gunicorn's configuration imports
service.logs before gevent patches the standard library, and nothing that
imports ssl (redis, celery) may be loaded by then.
"""


def build_app(name='service', config=None, routes=()):
    """A Flask app whose config holds every environment variable with a
    configured prefix (under its full name) and every setting of
    `service.settings`, `config` overriding both (the seed's
    get_or_create_app outside an app context).

    `routes` is a tuple of dicts, each a `rule` plus `Flask.add_url_rule`
    keyword arguments. Raises service.errors.ConfigError for an invalid setting."""
    from flask import Flask

    from service import settings
    app = Flask(name)
    app.config.update(settings.load(overrides=config))
    app.config['MAX_CONTENT_LENGTH'] = app.config['FLASK_MAX_CONTENT_LENGTH']
    app.config['SECRET_KEY'] = app.config.get('FLASK_SECRET_KEY') or None
    for route in routes:
        route = dict(route)
        app.add_url_rule(route.pop('rule'), **route)
    return app


def create_app(config=None, name='service'):
    """The service's app for any process; `config` overrides settings (tests).

    Raises service.errors.ConfigError (an invalid setting; in production, an
    unsafe one or a prefixed variable nothing reads) or pg.exceptions.ConfigError (SQLALCHEMY_DEFAULT missing)."""
    import os

    import tasks
    from pg import init_db
    from service.errors import ConfigError
    from service import config_check, logs, periodic, security
    from service.queue import init_celery
    from service.settings import split_list
    app = build_app(name, config)
    logs.configure(app.config)
    config_check.check(app.config, os.environ, config)
    # Here, so every process (web, worker, beat, Flower) refuses an unsafe production config.
    security.check(app.config)
    init_db(app)
    try:
        registry = tasks.load_all(extra=split_list(app.config['WORKER_KIND_MODULES']))
    except ImportError as error:
        raise ConfigError(f'WORKER_KIND_MODULES: {error}') from None
    app.extensions['periodic'] = periodic.parse(app.config, registry)
    init_celery(app)
    return app
