"""Logging of every process (web, worker, beat, Flower), set up in one place.

LOG_FORMAT=json (the default) writes one JSON object a line to stderr: time
(UTC, ISO 8601), level, logger, message, request_id when known, exc_info
for an exception, and any `extra` of the record. LOG_FORMAT=text writes
plain lines. Either way a URL's password is masked (`scheme://user:***@`).

The request id of a line is, first found: the record's own `request_id`
(`extra`), the web request's (flask.g.request_id, web/request_id.py), or
`job_request_id`: the one of the job the worker is applying, or of the job
the web's hot path (web/fast_paths.py, outside Flask's request) is recording.
"""
import json
import logging
import os
import re
import sys
import time
from contextvars import ContextVar
from datetime import datetime, timezone

from pythonjsonlogger.json import JsonFormatter

# The request id of the job being applied (the worker) or recorded by the web's
# hot path; requests that Flask serves use flask.g.
job_request_id = ContextVar('job_request_id', default=None)

# scheme://user:password@ -> scheme://user:***@ (a database or broker URL in a message).
URL_PASSWORD = re.compile(r'(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s"]*):[^@\s"]+@')
MASKED = r'\1:***@'
# Marks the handler configure() installs, so a second call replaces it.
OURS = '_service_handler'


def redact(text):
    return URL_PASSWORD.sub(MASKED, text) if '://' in text else text


def _request_id():
    try:
        from flask import g, has_request_context
    except ImportError:  # pragma: no cover - Flask is a dependency
        return job_request_id.get()
    if has_request_context():
        return g.get('request_id')
    return job_request_id.get()


class RequestIdFilter(logging.Filter):
    """Gives a record the request id of its context (none: no attribute)."""

    def filter(self, record):
        if getattr(record, 'request_id', None) is None:
            request_id = _request_id()
            if request_id is not None:
                record.request_id = request_id
        return True


class JsonLines(JsonFormatter):
    """One JSON object a line: time, level, logger, message, then the rest."""

    def __init__(self):
        super().__init__('%(levelname)s %(name)s %(message)s',
                         rename_fields={'levelname': 'level', 'name': 'logger'},
                         json_ensure_ascii=False)

    def add_fields(self, log_data, record, message_dict):
        log_data['time'] = _iso(record.created)
        super().add_fields(log_data, record, message_dict)
        if log_data.get('request_id', '') is None:
            del log_data['request_id']

    def format(self, record):
        return redact(super().format(record))


class TextLines(logging.Formatter):
    def __init__(self):
        super().__init__('%(asctime)s [%(process)d] %(levelname)s %(name)s%(request_tag)s: '
                         '%(message)s')

    def format(self, record):
        request_id = getattr(record, 'request_id', None)
        record.request_tag = f' [{request_id}]' if request_id is not None else ''
        return redact(super().format(record))


def _iso(created):
    return datetime.fromtimestamp(created, timezone.utc).isoformat(timespec='milliseconds')


def formatter(log_format):
    return JsonLines() if log_format == 'json' else TextLines()


def handler(log_format, stream=None):
    """A stream handler (stderr) writing `log_format` lines with request ids."""
    # The process's real stderr: Celery may turn sys.stderr into a logger of its own.
    found = logging.StreamHandler(sys.__stderr__ if stream is None else stream)
    found.setFormatter(formatter(log_format))
    found.addFilter(RequestIdFilter())
    setattr(found, OURS, True)
    return found


def configure(config, level=logging.INFO, *, force=False):
    """Log the process's records (root logger) at `level` in config['LOG_FORMAT'].

    Without `force`, a process whose logging its host already set up (pytest)
    keeps it. Returns the handler installed, or None."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, OURS, False)]
    if not force and len(root.handlers) > len(ours):
        return None
    for old in ours:
        root.removeHandler(old)
    installed = handler(config.get('LOG_FORMAT', 'json'))
    root.addHandler(installed)
    if level is not None:
        root.setLevel(level)
    logging.captureWarnings(True)  # a library's warning is a log line too, not raw stderr
    return installed


def say_json(msg, f=sys.__stderr__):
    """celery.apps.worker.safe_say as one JSON line: Celery writes its shutdown
    notices from a signal handler with os.write, where logging could deadlock."""
    line = json.dumps({'time': _iso(time.time()), 'level': 'WARNING',
                       'logger': 'celery.apps.worker', 'message': str(msg).strip()})
    try:
        os.write(f.fileno(), (line + '\n').encode())
    except (OSError, ValueError, AttributeError):
        pass  # best effort, as Celery's own


def gunicorn_logger_class():
    """gunicorn's Logger, its lines in LOG_FORMAT (gunicorn.conf.py names it)."""
    from gunicorn.glogging import Logger

    from service import settings

    class GunicornLogger(Logger):
        def setup(self, cfg):
            super().setup(cfg)
            log_format = settings.load().get('LOG_FORMAT')
            if log_format != 'json':
                return
            for log in (self.error_log, self.access_log):
                for found in log.handlers:
                    if getattr(found, '_gunicorn', False):
                        found.setFormatter(formatter(log_format))
                        found.addFilter(RequestIdFilter())
    return GunicornLogger
