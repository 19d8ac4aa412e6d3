"""Connections to the configured databases and their app-context sessions.

One `Connection` per `SQLALCHEMY_<NAME>` config key whose value is a database
URL; `SQLALCHEMY_DEFAULT` is the connection named `default`. Engines are
shared per process and URL; sessions live in the app context (`flask.g`) and
are closed when it ends.
"""
import os
import threading

from flask import g, has_app_context
from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from pg.exceptions import ConfigError, ConnectionLostError, PgError, translate

PREFIX = 'SQLALCHEMY_'
DEFAULT = 'default'

CONNECT_TIMEOUT_SECONDS = 5

_engines = {}
_engines_lock = threading.Lock()


def _forget_engines_in_child():
    # A forked worker must not share its parent's sockets: drop them unclosed.
    for engine in _engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_engines_in_child)


def shared_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True, lock_timeout_ms=None,
                  pgbouncer=False, autocommit=False):
    """Return this process's engine for `url`, creating it once.

    `autocommit`: each statement commits itself, with no BEGIN and COMMIT
    sent around it (two round trips fewer), for callers whose transactions
    are one statement each.

    `pgbouncer`: the URL is a PgBouncer in transaction pooling mode, where
    consecutive transactions of one connection may run on different server
    connections: no startup options (PgBouncer refuses them), no prepared
    statements (PgBouncer before 1.21 does not follow them from server to
    server), and the settings are set in each transaction instead."""
    key = (str(url), pool_size, max_overflow, pool_pre_ping, lock_timeout_ms, pgbouncer, autocommit)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            # Custom plans always: the driver prepares the statements it runs
            # often, and PostgreSQL may then keep one generic plan per
            # connection, made when a table was still small (a sequential scan)
            # and kept while it grows by the million between two ANALYZEs.
            settings = {'plan_cache_mode': 'force_custom_plan'}
            if lock_timeout_ms is not None:
                settings['lock_timeout'] = str(int(lock_timeout_ms))
            connect_args = {'connect_timeout': CONNECT_TIMEOUT_SECONDS}
            if pgbouncer:
                connect_args['prepare_threshold'] = None  # psycopg never prepares
            else:
                connect_args['options'] = ' '.join(f'-c {k}={v}' for k, v in settings.items())
            options = {'isolation_level': 'AUTOCOMMIT'} if autocommit else {}
            engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow,
                                   pool_pre_ping=pool_pre_ping, connect_args=connect_args,
                                   **options)
            if pgbouncer:
                _set_in_each_transaction(engine, settings)
            _engines[key] = engine
        return engine


def on_live_connection(engine, work, finish=None):
    """`work(conn)` on a connection of `engine`, an engine that skips the
    ping on checkout (a round trip per checkout), then `finish(conn)` if
    given; `work`'s result. A connection `work` finds dead (a database
    restart, an idle timeout) is replaced once, as the ping would have done,
    and `work` done again: it must be a read, or writes not committed yet.
    `finish` (a COMMIT) is never done again: lost on its way back, it may
    have been made."""
    for last_try in (False, True):
        with translate():
            conn = engine.connect()
        with conn:
            try:
                result = work(conn)
            except ConnectionLostError:
                if last_try:
                    raise
                continue  # the pool dropped its dead connections: take a new one
            if finish is not None:
                finish(conn)
            return result


def _set_in_each_transaction(engine, settings):
    """SET LOCAL the settings as each transaction begins (one statement more
    per transaction): they then hold on whichever server connection PgBouncer
    gives the transaction, and end with it."""
    names = sorted(settings)
    statement = 'SELECT ' + ', '.join(f'set_config(%(n{i})s, %(v{i})s, true)'
                                      for i in range(len(names)))
    params = {}
    for i, name in enumerate(names):
        params[f'n{i}'], params[f'v{i}'] = name, settings[name]

    @event.listens_for(engine, 'begin')
    def _begin(conn):
        conn.exec_driver_sql(statement, params)


def database_urls(config):
    """Map connection name -> URL for every SQLALCHEMY_<NAME> key holding a URL."""
    urls = {}
    for key, value in config.items():
        if key.startswith(PREFIX) and isinstance(value, str) and '://' in value:
            try:
                urls[key[len(PREFIX):].lower()] = make_url(value)
            except Exception:
                raise ConfigError(f'{key} is not a valid database URL') from None
    if DEFAULT not in urls:
        raise ConfigError('SQLALCHEMY_DEFAULT is not set: give the default database URL')
    return urls


class Connection:
    """One configured database: its engine and the session of the current app context."""

    def __init__(self, name, engine):
        self.name = name
        self.engine = engine

    @property
    def session(self):
        """The session of the current app context, opened on first use."""
        if not has_app_context():
            raise PgError('database sessions need an app context (with app.app_context(): ...)')
        sessions = g.setdefault('_pg_sessions', {})
        session = sessions.get(self.name)
        if session is None:
            session = sessions[self.name] = Session(self.engine)
        return session

    def __repr__(self):
        return f'<Connection {self.name} {self.engine.url.render_as_string(hide_password=True)}>'


class Pool:
    """The connections by name, and transaction control over their open sessions."""

    def __init__(self, connections):
        self.connections = connections

    def connection(self, name=DEFAULT):
        try:
            return self.connections[name]
        except KeyError:
            raise ConfigError(f'no database named {name!r}: set SQLALCHEMY_{name.upper()}') from None

    def _open_sessions(self, name):
        if not has_app_context():
            return []
        sessions = g.get('_pg_sessions', {})
        if name is not None:
            return [sessions[name]] if name in sessions else []
        return list(sessions.values())

    def commit(self, connection_name=None):
        """Commit the open transaction of one connection, or of all of them
        (one after the other: not atomic across databases)."""
        with translate():
            for session in self._open_sessions(connection_name):
                session.commit()

    def rollback(self, connection_name=None):
        """Roll back the open transaction of one connection, or of all of them."""
        with translate():
            for session in self._open_sessions(connection_name):
                session.rollback()

    def close(self, connection_name=None):
        """Roll back and close the session of one connection, or of all of them,
        giving their database connections back to the engine's pool."""
        if not has_app_context():
            return
        sessions = g.get('_pg_sessions', {})
        for name in [connection_name] if connection_name else list(sessions):
            session = sessions.pop(name, None)
            if session is not None:
                session.close()

    def remove(self, _exc=None):
        """Close every session of the ending app context (a teardown hook)."""
        self.close()
