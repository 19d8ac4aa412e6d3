"""Operational endpoints: the health check."""
import redis
from flask import Blueprint, current_app
from sqlalchemy import text

from pg.exceptions import PgError, translate
from service.queue import broker_client
from web.errors import RETRY_AFTER_SECONDS, envelope

bp = Blueprint('system', __name__)


def _postgres_ok():
    try:
        with translate(), current_app.extensions['pg'].pool.connection().engine.connect() as c:
            c.execute(text('SELECT 1'))
        return True
    except PgError:
        return False


def _redis_ok():
    try:
        return bool(broker_client(current_app).ping())
    except redis.RedisError:
        return False


@bp.get('/health')
def health():
    """200 when PostgreSQL and Redis both answer, else 503 naming the ones down."""
    checks = {'postgres': _postgres_ok(), 'redis': _redis_ok()}
    down = [name for name, ok in checks.items() if not ok]
    if down:
        return envelope(503, f'unavailable: {", ".join(down)}',
                        headers={'Retry-After': str(RETRY_AFTER_SECONDS)},
                        checks={name: 'ok' if ok else 'down' for name, ok in checks.items()})
    return {'status': 'ok', 'checks': {name: 'ok' for name in checks}}
