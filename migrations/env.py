"""Alembic's environment: the models' metadata and the database to migrate.

The URL is, first found: `-x url=...` on the alembic command line, the
`url` attribute a caller (manage.py, the tests) sets on the Config, then
SQLALCHEMY_DEFAULT from the app's configuration (settings.load(): the
environment).
"""
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

# The project is importable: alembic.ini's prepend_sys_path is its folder.
import ledger  # noqa: F401  (the jobs table)
import tasks
from pg.orm import BaseModel
from service import settings

config = context.config
# A caller inside a running process (the tests) keeps its own logging.
if config.config_file_name and config.attributes.get('configure_logger', True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

tasks.load_all()  # every model of every domain, so autogenerate sees all tables
target_metadata = BaseModel.metadata


def database_url():
    url = (context.get_x_argument(as_dictionary=True).get('url')
           or config.attributes.get('url')
           or settings.load().get('SQLALCHEMY_DEFAULT'))
    if not url:
        raise SystemExit('no database to migrate: set SQLALCHEMY_DEFAULT or pass -x url=...')
    return url


def render_item(type_, obj, autogen_context):
    # The seed's column types (pg.types) render importably in a revision.
    if type_ == 'type' and type(obj).__module__ == 'pg.types':
        autogen_context.imports.add('import pg.types')
        return f'pg.types.{obj!r}'
    return False


# The same comparison for `revision --autogenerate`, `alembic check` and the tests.
COMPARE = {'compare_type': True, 'compare_server_default': True, 'render_item': render_item}


def run_migrations_offline():
    context.configure(url=database_url(), target_metadata=target_metadata,
                      literal_binds=True, **COMPARE)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, **COMPARE)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
