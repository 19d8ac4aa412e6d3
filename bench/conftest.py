"""The bench's own tests (bench/test_*.py, run by `manage.py test` with the
suite) take the test databases and fixtures of tests/conftest.py: the suite
under tests/ never imports the bench."""
from tests.conftest import app, db, env, fresh_schema, pg_driver  # noqa: F401  (fixtures)
