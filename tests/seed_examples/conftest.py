import pytest


@pytest.fixture(scope='session', autouse=True)
def fresh_schema():
    """The seed's examples make their own tables (syncdb) from their own models."""
