"""The job a client polls (GET /jobs/<id>), read on connections of their
own: each read one statement committing itself (no BEGIN, no rollback at
the request's end), with no ping on checkout and no ORM session. Behind
PgBouncer the read runs in a transaction, where the connection's settings
are set."""
from flask import current_app

import ledger
from pg.pool import on_live_connection

EXTENSION = 'reads_engine'


def init_reads(app):
    config = app.config
    app.extensions[EXTENSION] = app.extensions['pg'].statement_engine(
        config['SQLALCHEMY_POOL_SIZE'], config['SQLALCHEMY_MAX_OVERFLOW'])


def public_job(job_id):
    """The job `job_id` as the HTTP API shows it, or None."""
    return on_live_connection(current_app.extensions[EXTENSION],
                              lambda conn: ledger.public_job(conn, job_id))
