"""The Flask application factory of the seed API: a shim over the service's
composition root (service/)."""
from flask import current_app, has_app_context

from service import build_app


def get_or_create_app(name=__name__, routes=(), config=None):
    """Return the current app inside an app context; otherwise build one whose
    config holds every environment variable with a configured prefix (under
    its full name) and every setting of `service.settings`, `config`
    overriding both.

    `routes` is a tuple of dicts, each a `rule` plus `Flask.add_url_rule`
    keyword arguments.
    """
    if has_app_context():
        return current_app._get_current_object()
    return build_app(name, config=config, routes=routes)
