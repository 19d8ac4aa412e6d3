"""The Flask application factory of the seed API."""
from flask import Flask, current_app, has_app_context

import settings


def get_or_create_app(name=__name__, routes=(), config=None):
    """Return the current app inside an app context; otherwise build one whose
    config holds every environment variable with a configured prefix (under
    its full name) and every setting of `settings`, `config` overriding both.

    `routes` is a tuple of dicts, each a `rule` plus `Flask.add_url_rule`
    keyword arguments.
    """
    if has_app_context():
        return current_app._get_current_object()
    app = Flask(name)
    app.config.update(settings.load(overrides=config))
    app.config['MAX_CONTENT_LENGTH'] = app.config['FLASK_MAX_CONTENT_LENGTH']
    app.config['SECRET_KEY'] = app.config.get('FLASK_SECRET_KEY') or None
    for route in routes:
        route = dict(route)
        app.add_url_rule(route.pop('rule'), **route)
    return app
