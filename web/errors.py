"""The one JSON error envelope, `{"code", "message"[, "errors"]}`, and the
handlers that turn every failure of a request into it."""
import logging

from flask import jsonify
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from werkzeug.exceptions import HTTPException

from pg.exceptions import ConnectionLostError

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    """The request cannot be served."""

    def __init__(self, status, message=None, errors=None, headers=None):
        super().__init__(message or self.__doc__)
        self.status = status
        self.message = message or self.__doc__
        self.errors = errors
        self.headers = headers or {}


class Unavailable(ApiError):
    """A backing service is unreachable: try again shortly."""

    def __init__(self, message=None):
        super().__init__(503, message or self.__doc__,
                         headers={'Retry-After': str(RETRY_AFTER_SECONDS)})


def envelope(status, message, errors=None, headers=None, **extra):
    body = {'code': status, 'message': message, **extra}
    if errors:
        body['errors'] = errors
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def init_errors(app):
    @app.errorhandler(ApiError)
    def api_error(error):
        return envelope(error.status, error.message, error.errors, error.headers)

    @app.errorhandler(HTTPException)
    def http_error(error):
        headers = {k: v for k, v in error.get_headers() if k.lower() != 'content-type'}
        return envelope(error.code, error.description, headers=headers)

    @app.errorhandler(ConnectionLostError)
    def database_down(error):
        log.warning('database unavailable: %s', type(error).__name__)
        return api_error(Unavailable('the database is unavailable: try again shortly'))

    @app.errorhandler(BrokerError)
    @app.errorhandler(RedisConnectionError)
    def broker_down(error):
        log.warning('broker unavailable: %s', type(error).__name__)
        return api_error(Unavailable('the queue is unavailable: try again shortly'))

    @app.errorhandler(Exception)
    def internal_error(error):
        log.exception('unhandled error')
        return envelope(500, 'internal error')
