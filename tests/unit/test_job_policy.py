"""A kind's policy is checked where it is declared, and periodic jobs where
they are configured (at every process's start)."""
from datetime import datetime, timezone

import pytest

import tasks
from service.errors import ConfigError
from service.periodic import Periodic, parse
from tasks.kinds import REGISTRY, KindDefinitionError, RetryLater, kind

OBJECT = {'type': 'object', 'additionalProperties': False}


@pytest.mark.parametrize('name, policy', [
    ('cancel', {}), ('retry', {}),
    ('p.a', {'max_attempts': 0}), ('p.b', {'timeout': 0}), ('p.c', {'timeout': 'soon'}),
    ('p.d', {'queue': ''}), ('p.e', {'queue': ' q'}), ('p.f', {'priority': 10}),
])
def test_a_wrong_policy_is_refused_at_declaration(name, policy):
    with pytest.raises(KindDefinitionError):
        kind(name, OBJECT, **policy)(lambda payload: None)
    assert name not in REGISTRY


def test_a_policy_routes_and_bounds_the_kind():
    try:
        kind('p.ok', OBJECT, max_attempts=2, timeout=1.5, queue='slow', priority=3)(lambda p: p)
        found = REGISTRY['p.ok']
        assert found.routing == {'queue': 'slow', 'priority': 3}
        assert (found.attempts(5), found.timeout) == (2, 1.5)
        assert REGISTRY['genre.create'].routing == {} and REGISTRY['genre.create'].attempts(5) == 5
    finally:
        REGISTRY.pop('p.ok', None)


def test_retry_later_carries_its_delay_and_reason():
    later = RetryLater(-3, 'busy')
    assert (later.seconds, later.reason, str(later)) == (0.0, 'busy', 'busy')


def periodic(**entry):
    return parse({'WORKER_PERIODIC_JOBS': {'nightly': entry}}, tasks.load_all())


def test_periodic_jobs_are_checked_naming_the_entry():
    genre = {'name': 'n', 'description': 'd'}
    [entry] = periodic(kind='genre.create', payload=genre, cron='0 3 * * *')
    assert entry == Periodic('nightly', 'genre.create', genre, '0 3 * * *')
    for wrong, words in [({'kind': 'no.such', 'cron': '* * * * *'}, 'unknown job kind'),
                         ({'kind': 'genre.create', 'payload': genre, 'cron': 'often'}, 'cron'),
                         ({'kind': 'genre.create', 'payload': {'name': 1}, 'cron': '* * * * *'},
                          'not a valid genre.create payload'),
                         ({'kind': 'genre.create', 'cron': '* * * * *', 'every': 1}, 'is {')]:
        with pytest.raises(ConfigError, match="'nightly'.*" + words.replace('{', r'\{')):
            periodic(**wrong)


def test_a_slot_is_the_latest_at_or_before_now_and_its_key_names_it():
    entry = Periodic('hourly', 'genre.create', {}, '0 * * * *')
    at = datetime(2030, 1, 31, 12, 0, 0, tzinfo=timezone.utc)
    assert entry.latest_slot(at) == at
    assert entry.latest_slot(at.replace(minute=59)) == at
    assert entry.key(at) == 'hourly@2030-01-31T12:00:00+00:00'
    seconds = Periodic('often', 'genre.create', {}, '* * * * * */2')
    assert seconds.latest_slot(at.replace(second=3)) == at.replace(second=2)
