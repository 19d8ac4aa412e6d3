"""The brokers the e2e tests run on: every test on the session's service
(TEST_BROKER's broker), and the pipeline and worker chaos tests again on
RabbitMQ (TEST_RABBITMQ_URL) whatever TEST_BROKER says, so that CI runs them
on both. A module names its brokers with one of these marks; the
`broker_service` fixture of tests/e2e/conftest.py (which `clean` goes
through) starts the RabbitMQ service, once per module.

A machine without RabbitMQ (manage.py test on embedded servers) skips the
RabbitMQ runs; CI (`CI` set), which has one, never does."""
import os
import socket
from urllib.parse import urlsplit

import pytest

from tests.settings import RABBITMQ_URL


def answers(url):
    """True when something listens at the broker URL's address."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 5672), timeout=2):
            return True
    except OSError:
        return False


RABBITMQ = pytest.param('rabbitmq', marks=pytest.mark.skipif(
    not os.environ.get('CI') and not answers(RABBITMQ_URL),
    reason=f'no RabbitMQ answers at {urlsplit(RABBITMQ_URL).hostname}'))


def on_brokers(*brokers):
    """A module's mark: its tests run once per broker ('session': the
    session's service; RABBITMQ: a service of the module's own on RabbitMQ)."""
    return pytest.mark.parametrize('broker_service', brokers, indirect=True, scope='module')


ON_EACH_BROKER = on_brokers('session', RABBITMQ)
ON_RABBITMQ = on_brokers(RABBITMQ)
