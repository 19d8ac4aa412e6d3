"""alembic run from the tests on a database of theirs (the `new_database`
fixture of tests/conftest.py makes throwaway ones)."""
import os

from alembic.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def alembic_config(url):
    config = Config(os.path.join(ROOT, 'alembic.ini'))
    config.attributes['url'] = url
    config.attributes['configure_logger'] = False  # keep pytest's logging as it is
    return config
