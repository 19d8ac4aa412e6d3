"""The migrations (migrations/) make exactly the models' schema.

Each test makes its own throwaway databases through the admin role, so the
suite's fresh_schema (tables of the models in TEST_DATABASE_URL) is no help
and no hindrance. A column, index or default added to a model without a
migration fails test_upgrade_head_matches_the_models: this is the check that
keeps models and migrations together.
"""
import os
import subprocess
import sys

import psycopg
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

import tasks
from pg.orm import BaseModel
from tests.alembic_config import ROOT, alembic_config


def differences(url):
    """What `alembic check` would report: the models against the database."""
    tasks.load_all()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                'compare_type': True, 'compare_server_default': True})
            return compare_metadata(context, BaseModel.metadata)
    finally:
        engine.dispose()


def catalog(url):
    """The schema as PostgreSQL describes it: columns, indexes (with their
    WHERE), constraints; alembic's own table left out."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            columns = conn.execute(text(
                "SELECT table_name, column_name, data_type, character_maximum_length, "
                "is_nullable, column_default FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name <> 'alembic_version' "
                "ORDER BY 1, 2")).all()
            indexes = conn.execute(text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version' ORDER BY 1")).all()
            constraints = conn.execute(text(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(c.oid) "
                "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
                "WHERE n.nspname = 'public' AND conrelid::regclass::text <> 'alembic_version' "
                "ORDER BY 1, 2")).all()
            relations = conn.execute(text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relname NOT LIKE 'alembic_version%' "
                "ORDER BY 1")).scalars().all()
        return {'columns': columns, 'indexes': indexes, 'constraints': constraints,
                'relations': relations}
    finally:
        engine.dispose()


def test_upgrade_head_matches_the_models(new_database):
    url = new_database()
    command.upgrade(alembic_config(url), 'head')
    assert differences(url) == [], (
        'the models and the migrations disagree: add a revision '
        '(alembic revision --autogenerate -m ..., then review it)')


def test_upgrade_head_makes_what_syncdb_makes(new_database):
    migrated, synced = new_database(), new_database()
    command.upgrade(alembic_config(migrated), 'head')
    tasks.load_all()
    engine = create_engine(synced)
    BaseModel.metadata.create_all(engine)
    engine.dispose()
    # Also what autogenerate does not compare, such as ux_jobs_idempotency's WHERE.
    expected = catalog(synced)
    assert 'WHERE (idempotency_key IS NOT NULL)' in dict(expected['indexes'])['ux_jobs_idempotency']
    assert catalog(migrated) == expected


def test_downgrade_base_leaves_no_tables_and_upgrades_again(new_database):
    url = new_database()
    config = alembic_config(url)
    command.upgrade(config, 'head')
    command.downgrade(config, 'base')
    assert catalog(url)['relations'] == []
    command.upgrade(config, 'head')
    assert differences(url) == []


def test_manage_db_upgrade_migrates_the_configured_database(new_database):
    url = new_database()
    # The container's path: the running interpreter, the URL from the environment.
    env = dict(os.environ, MANAGE_IN_CONTAINER='1', SQLALCHEMY_DEFAULT=url)
    result = subprocess.run([sys.executable, 'manage.py', 'db', 'upgrade'], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Running upgrade  -> 0001' in result.stderr
    assert differences(url) == []


def test_manage_run_migrates_a_new_database_and_syncs_an_old_one(new_database):
    """`manage.py run` prepares the service database: with alembic when it is
    new (or migrated already), with syncdb when an earlier syncdb made it."""
    import manage
    from web import create_app
    fresh, synced = new_database(), new_database()
    app = create_app(config={'SQLALCHEMY_DEFAULT': synced})
    with app.app_context():
        app.extensions['pg'].syncdb()
    for url, expected in ((fresh, 'migrated'), (fresh, 'migrated'), (synced, 'synced')):
        app = create_app(config={'SQLALCHEMY_DEFAULT': url})
        assert manage.prepare_database(app, app.extensions['pg']) == expected
        app.extensions['pg'].pool.connection().engine.dispose()
    assert differences(fresh) == []
    with psycopg.connect(fresh) as conn:
        assert conn.execute('SELECT version_num FROM alembic_version').fetchone()
