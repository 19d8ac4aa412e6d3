"""The choice between the configured servers and embedded ones (devservers.choice),
with real sockets: one listening, one closed."""
import socket

import pytest

import manage
from devservers import choice


@pytest.fixture
def listening():
    """A port of 127.0.0.1 that accepts connections, and one where nothing does."""
    with socket.socket() as server, socket.socket() as closed:
        server.bind(('127.0.0.1', 0))
        server.listen()
        closed.bind(('127.0.0.1', 0))  # bound, never listening: refused
        yield server.getsockname()[1], closed.getsockname()[1]


@pytest.mark.parametrize('scheme, url', [
    ('postgresql', 'postgresql://ds:dsps@127.0.0.1:{port}/ds_test'),
    ('postgresql', 'postgresql+psycopg://ds:dsps@localhost:{port}/ds'),
    ('redis', 'redis://127.0.0.1:{port}/12'),
])
def test_auto_uses_a_local_default_that_answers_and_embeds_one_that_does_not(
        monkeypatch, listening, scheme, url):
    up, down = listening
    # The ports stand for the local default (5432, 6379), which the machine's servers may hold.
    monkeypatch.setitem(choice.DEFAULT_PORTS, scheme, up)
    assert choice.answers(url.format(port=up))
    assert choice.embed('auto', url.format(port=up)) is False
    monkeypatch.setitem(choice.DEFAULT_PORTS, scheme, down)
    assert not choice.answers(url.format(port=down))
    assert choice.embed('auto', url.format(port=down)) is True


def test_auto_never_replaces_a_server_that_is_not_the_local_default(listening):
    _, down = listening
    for url in ('postgresql://ds:pw@pgdb:5432/ds', 'redis://:pw@redis:6379/0',
                f'postgresql://ds:pw@127.0.0.1:{down}/ds', f'redis://127.0.0.1:{down}/0'):
        assert choice.embed('auto', url) is False, url


def test_the_setting_forces_either_way(listening):
    up, down = listening
    assert choice.embed('embedded', f'redis://127.0.0.1:{up}/0') is True
    assert choice.embed('embedded', 'postgresql://ds:pw@pgdb:5432/ds') is True
    assert choice.embed('external', f'postgresql://ds:pw@127.0.0.1:{down}/ds') is False
    with pytest.raises(ValueError, match='auto, embedded, external'):
        choice.embed('sometimes', 'redis://127.0.0.1:6379/0')


def test_manage_takes_the_choice_from_the_flag_then_the_setting(monkeypatch):
    monkeypatch.delenv('SERVICE_SERVERS', raising=False)
    assert manage.servers_mode(manage.parse(['run'])) == 'auto'
    monkeypatch.setenv('SERVICE_SERVERS', 'external')
    assert manage.servers_mode(manage.parse(['test'])) == 'external'
    assert manage.servers_mode(manage.parse(['run', '--servers', 'embedded', 'web'])) == 'embedded'
    args = manage.parse(['test', '--servers', 'embedded', '--q', 'tests/unit', '-x'])
    assert manage.servers_mode(args) == 'embedded' and args.extra == ['-x']
