"""Operational endpoints: the health check."""
from flask import Blueprint, current_app
from sqlalchemy import text

from pg.exceptions import PgError, translate
from service import brokers
from web.errors import RETRY_AFTER_SECONDS, envelope

bp = Blueprint('system', __name__)


def _postgres_ok():
    try:
        with translate(), current_app.extensions['pg'].pool.connection().engine.connect() as c:
            c.execute(text('SELECT 1'))
        return True
    except PgError:
        return False


def _broker_ok():
    return brokers.probe(current_app).ok()


@bp.get('/health')
def health():
    """200 when PostgreSQL and the broker both answer, else 503 naming the
    ones down; the broker by its kind (redis or rabbitmq)."""
    checks = {'postgres': _postgres_ok(), brokers.probe(current_app).kind: _broker_ok()}
    down = [name for name, ok in checks.items() if not ok]
    if down:
        return envelope(503, f'unavailable: {", ".join(down)}',
                        headers={'Retry-After': str(RETRY_AFTER_SECONDS)},
                        checks={name: 'ok' if ok else 'down' for name, ok in checks.items()})
    return {'status': 'ok', 'checks': {name: 'ok' for name in checks}}
