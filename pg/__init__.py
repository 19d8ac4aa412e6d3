"""The ORM layer of the seed API: `init_db(app)` and the `Database` it returns."""
from sqlalchemy import text

from pg.exceptions import TransientError, translate
from pg.orm import BaseModel
from pg.pool import DEFAULT, Connection, Pool, database_urls, shared_engine

EXTENSION = 'pg'
TRUNCATE_ATTEMPTS = 3  # cleandb's, when a concurrent transaction is in its way


class Database:
    """The configured databases of one app and the schema operations on them."""

    def __init__(self, app):
        config = self._config = app.config
        self.pool = Pool({
            name: Connection(name, shared_engine(
                url,
                pool_size=config.get('SQLALCHEMY_POOL_SIZE', 5),
                max_overflow=config.get('SQLALCHEMY_MAX_OVERFLOW', 5),
                pool_pre_ping=config.get('SQLALCHEMY_POOL_PRE_PING', True),
                lock_timeout_ms=config.get('SQLALCHEMY_LOCK_TIMEOUT_MS'),
                pgbouncer=config.get('SQLALCHEMY_PGBOUNCER', False)))
            for name, url in database_urls(config).items()})

    def statement_engine(self, pool_size, max_overflow):
        """An engine of the default database for callers whose transactions
        are one statement each: each commits itself (no BEGIN, no COMMIT), with
        no ping on checkout (use pg.pool.on_live_connection). Behind PgBouncer
        the statement runs in a transaction, where the connection's settings
        are set."""
        config, pgbouncer = self._config, self._config.get('SQLALCHEMY_PGBOUNCER', False)
        return shared_engine(
            self.pool.connection().engine.url, pool_size=pool_size, max_overflow=max_overflow,
            pool_pre_ping=False, lock_timeout_ms=config.get('SQLALCHEMY_LOCK_TIMEOUT_MS'),
            pgbouncer=pgbouncer, autocommit=not pgbouncer)

    def _engines(self, connection_name):
        if connection_name is None:
            return [c.engine for c in self.pool.connections.values()]
        return [self.pool.connection(connection_name).engine]

    def syncdb(self, connection_name=None):
        """Create the tables of every model that do not exist yet, in one
        database or in all of them."""
        with translate():
            for engine in self._engines(connection_name):
                BaseModel.metadata.create_all(engine)

    def cleandb(self, connection_name=None):
        """Delete every row of every model table (ids restart at 1), in one
        database or in all of them."""
        self.pool.close(connection_name)
        tables = BaseModel.metadata.sorted_tables
        if not tables:
            return
        for engine in self._engines(connection_name):
            # Identifiers cannot be bound: they come from the models, quoted by the dialect.
            quote = engine.dialect.identifier_preparer.format_table
            names = ', '.join(quote(t) for t in tables)
            for attempt in range(1, TRUNCATE_ATTEMPTS + 1):
                try:
                    with translate(), engine.begin() as conn:
                        conn.execute(text(f'TRUNCATE {names} RESTART IDENTITY CASCADE'))
                    break
                except TransientError:
                    # A live service's transaction (beat's sweep, a worker) held one
                    # of the tables, maybe while waiting for another TRUNCATE had
                    # taken (a deadlock, TRUNCATE its victim).
                    if attempt == TRUNCATE_ATTEMPTS:
                        raise

    def dropdb(self, connection_name=None):
        """Drop every model table, in one database or in all of them."""
        self.pool.close(connection_name)
        with translate():
            for engine in self._engines(connection_name):
                BaseModel.metadata.drop_all(engine)


def init_db(app):
    """Return the app's `Database`, creating it on first call.

    Raises pg.exceptions.ConfigError when SQLALCHEMY_DEFAULT is missing or a
    URL is invalid.
    """
    db = app.extensions.get(EXTENSION)
    if db is None:
        db = app.extensions[EXTENSION] = Database(app)
        app.teardown_appcontext(db.pool.remove)
    return db


__all__ = ['DEFAULT', 'Database', 'init_db']
