"""logs.py: one JSON object a line (or text), the request id of the context,
and no URL password in any line."""
import io
import json
import logging

import pytest
from flask import Flask, g

from service import logs
from service import settings
from service.errors import ConfigError


@pytest.fixture
def capture():
    """A logger writing through logs.handler into a buffer: lines(format) -> list."""
    stream = io.StringIO()
    logger = logging.getLogger('tests.logs')
    logger.propagate = False
    logger.setLevel(logging.DEBUG)

    def use(log_format):
        logger.handlers = [logs.handler(log_format, stream)]
        return logger

    def lines():
        return stream.getvalue().splitlines()

    use.lines = lines
    yield use
    logger.handlers = []


def test_a_json_line_has_time_level_logger_message_and_extras(capture):
    capture('json').warning('job %s failed', 7, extra={'job_id': 7})
    [line] = capture.lines()
    record = json.loads(line)
    assert list(record)[:4] == ['time', 'level', 'logger', 'message']
    assert record['level'] == 'WARNING' and record['logger'] == 'tests.logs'
    assert record['message'] == 'job 7 failed' and record['job_id'] == 7
    assert record['time'].endswith('+00:00')
    assert 'request_id' not in record  # none known


def test_an_exception_stays_on_one_line(capture):
    try:
        raise ValueError('boom\nsecond line')
    except ValueError:
        capture('json').exception('handler error')
    [line] = capture.lines()
    assert 'ValueError: boom' in json.loads(line)['exc_info']


def test_the_request_id_comes_from_the_request_then_the_job(capture):
    logger = capture('json')
    app = Flask('t')
    with app.test_request_context('/'):
        g.request_id = 'req-1'
        logger.info('in a request')
    token = logs.job_request_id.set('job-req-2')
    try:
        logger.info('applying a job')
        logger.info('explicit', extra={'request_id': 'own'})
    finally:
        logs.job_request_id.reset(token)
    logger.info('outside')
    ids = [json.loads(line).get('request_id') for line in capture.lines()]
    assert ids == ['req-1', 'job-req-2', 'own', None]


def test_text_lines_carry_the_request_id(capture):
    logger = capture('text')
    token = logs.job_request_id.set('abc')
    try:
        logger.warning('job 1 failed')
    finally:
        logs.job_request_id.reset(token)
    logger.warning('no id')
    first, second = capture.lines()
    assert 'WARNING tests.logs [abc]: job 1 failed' in first
    assert 'WARNING tests.logs: no id' in second


@pytest.mark.parametrize('log_format', ['json', 'text'])
def test_a_url_password_is_masked(capture, log_format):
    logger = capture(log_format)
    logger.error('cannot reach postgresql://ds:hunter2-pw@db:5432/ds and redis://:r3dis-pw@redis:6379/0')
    try:
        raise RuntimeError('postgresql+psycopg://ds:hunter2-pw@db/ds refused')
    except RuntimeError:
        logger.exception('again')
    text = '\n'.join(capture.lines())
    assert 'hunter2-pw' not in text and 'r3dis-pw' not in text
    assert 'postgresql://ds:***@db:5432/ds' in text and 'redis://:***@redis:6379/0' in text


def test_log_format_is_json_by_default_and_checked():
    assert settings.load({})['LOG_FORMAT'] == 'json'
    assert settings.load({'LOG_FORMAT': 'TEXT'})['LOG_FORMAT'] == 'text'
    with pytest.raises(ConfigError, match='LOG_FORMAT'):
        settings.load({'LOG_FORMAT': 'xml'})


def test_configure_keeps_a_hosts_logging_unless_forced():
    root = logging.getLogger()
    foreign = logging.NullHandler()
    saved = root.handlers[:], root.level
    root.handlers = [foreign]
    try:
        assert logs.configure({'LOG_FORMAT': 'json'}) is None
        assert root.handlers == [foreign]
        installed = logs.configure({'LOG_FORMAT': 'json'}, force=True)
        again = logs.configure({'LOG_FORMAT': 'text'}, force=True)
        assert root.handlers == [foreign, again] and installed is not again
    finally:
        root.handlers, level = saved
        root.setLevel(level)


def test_celerys_shutdown_notice_is_a_json_line(tmp_path):
    path = tmp_path / 'out'
    with open(path, 'w') as f:
        logs.say_json('\nworker: Warm shutdown (MainProcess)\n', f)
    record = json.loads(path.read_text())
    assert record['message'] == 'worker: Warm shutdown (MainProcess)'
    assert record['level'] == 'WARNING'
