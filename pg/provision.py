"""Create the roles and databases named by database URLs (idempotent).

Used by `manage.py setup` on a machine whose PostgreSQL lets an admin role in
(the development and CI machines: trust auth on 127.0.0.1).
"""
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url


def ensure_databases(admin_url, urls):
    """Make sure each URL's role (with its password) and database exist.

    Returns the names of the databases created."""
    admin = make_url(admin_url)
    created = []
    with psycopg.connect(host=admin.host, port=admin.port, user=admin.username,
                         password=admin.password, dbname=admin.database or 'postgres',
                         autocommit=True) as conn:
        for raw in urls:
            url = make_url(raw)
            role, db = url.username, url.database
            exists = conn.execute('SELECT 1 FROM pg_roles WHERE rolname = %s', (role,)).fetchone()
            verb = 'ALTER' if exists else 'CREATE'
            conn.execute(sql.SQL(verb + ' ROLE {} LOGIN PASSWORD {}').format(
                sql.Identifier(role), sql.Literal(url.password or '')))
            if not conn.execute('SELECT 1 FROM pg_database WHERE datname = %s', (db,)).fetchone():
                conn.execute(sql.SQL('CREATE DATABASE {} OWNER {}').format(
                    sql.Identifier(db), sql.Identifier(role)))
                created.append(db)
    return created
