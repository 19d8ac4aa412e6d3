"""The compiled validator (jsonschema-rs) only ever says "valid" where the
reference (jsonschema) agrees: a payload it lets through unchecked is one the
reference would have accepted too. Differential, over generated payloads
close to each kind's schema and far from it."""
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tasks import load_all
from tasks.kinds import REGISTRY

load_all()

SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(-2**70, 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=80)
           | st.sampled_from(['', '@', 'a@b', 'x@', 'a@b.c', 'ann@example.com', '1.0', ' ',
                              'é' * 300, '\x00']))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


def near(schema):
    """Objects with the schema's own fields (each maybe missing, maybe of
    any type), sometimes an unknown one."""
    fields = {name: SCALARS | JSON for name in schema.get('properties', {})}
    return st.fixed_dictionaries({}, optional=fields).flatmap(
        lambda d: st.one_of(st.just(d), st.dictionaries(st.text(max_size=6), JSON, max_size=2)
                            .map(lambda extra: {**extra, **d})))


@pytest.mark.parametrize('name', sorted(REGISTRY))
@settings(max_examples=400, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_valid_implies_reference_valid(name, data):
    kind = REGISTRY[name]
    payload = data.draw(near(kind.schema) | JSON)
    if kind.surely_valid(payload):
        assert kind.validator.is_valid(payload), payload


@pytest.mark.parametrize('name', sorted(REGISTRY))
def test_a_plain_valid_payload_takes_the_compiled_path(name):
    valid = {
        'genre.create': {'name': 'jazz', 'description': 'swing'},
        'genre.update': {'id': 1, 'name': 'bebop'},
        'artist.create': {'name': 'Monk', 'description': 'piano', 'genre_id': 1},
        'album.create': {'name': 'Brilliant Corners', 'description': '1957', 'artist_id': 1},
        'user.create': {'username': 'ann', 'email': 'ann@example.com', 'password': 's3cret-pass'},
        'user.credit': {'user_id': 1, 'amount': 10},
    }
    assert REGISTRY[name].surely_valid(valid[name])
