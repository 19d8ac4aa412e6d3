"""Create the roles and databases named by database URLs (idempotent).

Used by `manage.py` through an admin role (PG_ADMIN_URL: a superuser, or a
role with CREATEDB and CREATEROLE, with its password if it has one).
"""
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url


def _connect(url, **kwargs):
    url = make_url(url)
    return psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                           dbname=url.database or 'postgres', **kwargs)


def can_connect(url, timeout=5):
    """True when `url` connects as it is (its role and database exist)."""
    try:
        with _connect(url, connect_timeout=timeout):
            return True
    except psycopg.Error:
        return False


def ensure_databases(admin_url, urls, reset_password=True):
    """Make sure each URL's role and database exist; the role of a new one
    gets the URL's password, an existing one too unless `reset_password` is
    false.

    Returns the names of the databases created."""
    created = []
    with _connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        for raw in urls:
            url = make_url(raw)
            role, db = url.username, url.database
            exists = conn.execute('SELECT 1 FROM pg_roles WHERE rolname = %s', (role,)).fetchone()
            verb = 'ALTER' if exists else 'CREATE'
            if not exists or reset_password:
                conn.execute(sql.SQL(verb + ' ROLE {} LOGIN PASSWORD {}').format(
                    sql.Identifier(role), sql.Literal(url.password or '')))
            if not conn.execute('SELECT 1 FROM pg_database WHERE datname = %s', (db,)).fetchone():
                # An admin role that is not a superuser (CREATEDB, CREATEROLE: a managed
                # platform's) may only give a database to a role it is a member of.
                if not conn.execute("SELECT pg_has_role(current_user, %s, 'MEMBER')",
                                    (role,)).fetchone()[0]:
                    conn.execute(sql.SQL('GRANT {} TO CURRENT_USER').format(sql.Identifier(role)))
                conn.execute(sql.SQL('CREATE DATABASE {} OWNER {}').format(
                    sql.Identifier(db), sql.Identifier(role)))
                created.append(db)
    return created
