"""The job a client polls (GET /jobs/<id>), read on connections of their
own: each read one statement committing itself (no BEGIN, no rollback at
the request's end), with no ping on checkout and no ORM session. Behind
PgBouncer the read runs in a transaction, where the connection's settings
are set."""
from flask import current_app

import ledger
from pg.pool import on_live_connection, shared_engine

EXTENSION = 'reads_engine'


def init_reads(app):
    config = app.config
    pgbouncer = config['SQLALCHEMY_PGBOUNCER']
    default = app.extensions['pg'].pool.connection().engine
    app.extensions[EXTENSION] = shared_engine(
        default.url, pool_size=config['SQLALCHEMY_POOL_SIZE'],
        max_overflow=config['SQLALCHEMY_MAX_OVERFLOW'], pool_pre_ping=False,
        lock_timeout_ms=config['SQLALCHEMY_LOCK_TIMEOUT_MS'],
        pgbouncer=pgbouncer, autocommit=not pgbouncer)


def public_job(job_id):
    """The job `job_id` as the HTTP API shows it, or None."""
    return on_live_connection(current_app.extensions[EXTENSION],
                              lambda conn: ledger.public_job(conn, job_id))
