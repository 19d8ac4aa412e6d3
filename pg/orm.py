"""BaseModel and its `objects` manager: the ORM API of the seed."""
import json

from sqlalchemy import Column, DateTime, Integer, event, func, insert, inspect, select, text
from sqlalchemy.orm import DeclarativeBase, object_session

from pg.exceptions import (InvalidQueryError, MultipleFoundError, NotFoundError, PgError,
                           translate)

DEFAULT = 'default'


def _database():
    from flask import current_app, has_app_context
    if not has_app_context():
        raise PgError('the ORM needs an app context (with app.app_context(): ...)')
    db = current_app.extensions.get('pg')
    if db is None:
        raise PgError('init_db(app) has not been called for this app')
    return db


def _session(connection_name):
    return _database().pool.connection(connection_name or DEFAULT).session


class Results:
    """Rows of a filter_by: iterate, slice (LIMIT/OFFSET in SQL), count, first."""

    def __init__(self, model, connection_name, where, order, offset=0, limit=None):
        self._model = model
        self._connection_name = connection_name
        self._where = where
        self._order = order
        self._offset = offset
        self._limit = limit

    def _statement(self):
        stmt = select(self._model).filter_by(**self._where).order_by(*self._order)
        if self._offset:
            stmt = stmt.offset(self._offset)
        if self._limit is not None:
            stmt = stmt.limit(self._limit)
        return stmt

    def all(self):
        with translate():
            return list(_session(self._connection_name).scalars(self._statement()))

    def __iter__(self):
        return iter(self.all())

    def first(self):
        rows = self[:1]
        return rows[0] if rows else None

    def count(self):
        stmt = select(func.count()).select_from(self._statement().subquery())
        with translate():
            return _session(self._connection_name).scalar(stmt)

    def __getitem__(self, item):
        if isinstance(item, int):
            if item < 0:
                raise InvalidQueryError('negative indexes are not supported')
            rows = self[item:item + 1]
            if not rows:
                raise IndexError(item)
            return rows[0]
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise InvalidQueryError('only ints and slices without a step select rows')
        start, stop = item.start or 0, item.stop
        if start < 0 or (stop is not None and stop < 0):
            raise InvalidQueryError('negative slice bounds are not supported')
        limit = None if stop is None else max(stop - start, 0)
        if self._limit is not None:
            left = max(self._limit - start, 0)
            limit = left if limit is None else min(limit, left)
        return Results(self._model, self._connection_name, self._where, self._order,
                       self._offset + start, limit).all()


class Manager:
    """Queries on one model. Every call takes `connection_name` (default: 'default')."""

    def __init__(self, model):
        self.model = model

    @property
    def db(self):
        """The Database of the current app."""
        return _database()

    def session(self, connection_name=DEFAULT):
        return _session(connection_name)

    def _columns(self):
        return {attr.key: attr for attr in inspect(self.model).column_attrs}

    def _where(self, filters):
        unknown = set(filters) - set(self._columns())
        if unknown:
            raise InvalidQueryError(
                f'{self.model.__name__} has no column {", ".join(sorted(unknown))}')
        return filters

    def _order(self, order_by):
        names = [order_by] if isinstance(order_by, str) else list(order_by or ())
        columns = self._columns()
        order = []
        for name in names:
            key = name.lstrip('-')
            if key not in columns:
                raise InvalidQueryError(f'cannot order {self.model.__name__} by {name!r}')
            column = getattr(self.model, key)
            order.append(column.desc() if name.startswith('-') else column.asc())
        return order

    def _one(self, stmt, connection_name):
        with translate():
            rows = _session(connection_name).scalars(stmt.limit(2)).all()
        if not rows:
            raise NotFoundError(f'no {self.model.__name__} matches')
        if len(rows) > 1:
            raise MultipleFoundError(f'several {self.model.__name__} rows match')
        return rows[0]

    def get(self, connection_name=DEFAULT, **filters):
        """Return the one row matching `filters`.

        Raises NotFoundError, MultipleFoundError, InvalidQueryError (unknown column)."""
        stmt = select(self.model).filter_by(**self._where(filters))
        return self._one(stmt, connection_name)

    def get_for_update(self, connection_name=DEFAULT, nowait=None, skip_locked=False, **filters):
        """Return the one row matching `filters`, locked (SELECT ... FOR UPDATE)
        until the transaction ends, its attributes read afresh.

        NOWAIT by default: a row another transaction holds raises RowLockedError
        at once. `nowait=False` waits for the lock; `skip_locked=True` treats a
        locked row as absent (NotFoundError). Raises InvalidQueryError for an
        empty filter or nowait together with skip_locked.
        """
        if not filters:
            raise InvalidQueryError('get_for_update needs a filter: it would lock the whole table')
        if skip_locked and nowait:
            raise InvalidQueryError('nowait and skip_locked contradict each other')
        nowait = not skip_locked if nowait is None else bool(nowait)
        stmt = (select(self.model).filter_by(**self._where(filters))
                .with_for_update(nowait=nowait, skip_locked=skip_locked)
                .execution_options(populate_existing=True))
        return self._one(stmt, connection_name)

    def filter_by(self, order_by='id', limit=None, offset=None, connection_name=DEFAULT,
                  **filters):
        """Rows matching `filters`, ordered by column names ('-name' descends);
        a Results that runs when iterated or sliced."""
        if (limit is not None and limit < 0) or (offset is not None and offset < 0):
            raise InvalidQueryError('limit and offset cannot be negative')
        return Results(self.model, connection_name, self._where(filters),
                       self._order(order_by), offset or 0, limit)

    def count(self, connection_name=DEFAULT, **filters):
        """Number of rows matching `filters`."""
        stmt = select(func.count()).select_from(self.model).filter_by(**self._where(filters))
        with translate():
            return _session(connection_name).scalar(stmt)

    def raw_sql(self, sql, connection_name=DEFAULT, **params):
        """Run one SQL statement with `:name` placeholders bound to `params`
        (never formatted into the text); return the SQLAlchemy Result."""
        if not isinstance(sql, str):
            raise InvalidQueryError('raw_sql takes the SQL text as a str')
        with translate():
            return _session(connection_name).execute(text(sql), params)

    def insert_many(self, rows, connection_name=DEFAULT):
        """Insert one row per dict of column values in one statement, building
        no objects; return the ids in order. Rows of the same columns travel
        as one JSON array that PostgreSQL unpacks (jsonb_populate_recordset):
        no parameter per value to build on either side."""
        rows = list(rows)
        session = _session(connection_name)
        table = self.model.__table__
        names = set(rows[0]) if rows else set()
        columns = [c.name for c in table.columns if c.name in names]
        if not rows or len(columns) != len(names) or any(set(r) != names for r in rows):
            # Rows of other shapes: SQLAlchemy's ORM bulk INSERT.
            stmt = insert(self.model).returning(self.model.id, sort_by_parameter_order=True)
            with translate():
                return session.scalars(stmt, rows).all()
        with translate():
            ids = session.scalars(_unpacking_insert(session, table, columns),
                                  {'rows': json.dumps(rows)}).all()
        # The ids come from the sequence in the rows' order (ORDER BY ordinality).
        return sorted(ids)

    def add_all(self, objects, connection_name=DEFAULT):
        """Insert the new objects in as few statements as the driver allows."""
        session = _session(connection_name)
        with translate():
            session.add_all(objects)
            session.flush()


def _unpacking_insert(session, table, columns):
    """INSERT of the rows of a JSON array: names from the model, quoted by the
    dialect; the values come only through the bound :rows."""
    quote = session.get_bind().dialect.identifier_preparer.quote
    names = ', '.join(quote(c) for c in columns)
    return text(f'INSERT INTO {quote(table.name)} ({names}) SELECT {names} '
                f'FROM jsonb_populate_recordset(NULL::{quote(table.name)}, CAST(:rows AS jsonb)) '
                f'WITH ORDINALITY AS r ORDER BY ordinality RETURNING id')


class _ManagerAccessor:
    def __get__(self, instance, owner):
        return Manager(owner)


class Base(DeclarativeBase):
    pass


class BaseModel(Base):
    """A table with an integer `id` and `created_at`/`updated_at` set by the database."""

    __abstract__ = True
    __mapper_args__ = {'eager_defaults': True}

    id = Column(Integer, primary_key=True)
    created_at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at = Column(DateTime(timezone=True), nullable=False, server_default=func.now(),
                        onupdate=func.now())

    objects = _ManagerAccessor()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if '__table__' in cls.__dict__:
            _coerce_on_assignment(cls)

    def _session(self, connection_name):
        if connection_name is None:
            return object_session(self) or _session(DEFAULT)
        return _session(connection_name)

    def add(self, connection_name=None):
        """INSERT this object now (flushed: its id is set); commit to keep it."""
        session = self._session(connection_name)
        with translate():
            session.add(self)
            session.flush()
        return self

    def update(self, connection_name=None):
        """Write this object's changed attributes now (flushed); commit to keep them."""
        return self.add(connection_name)

    def delete(self, connection_name=None):
        """DELETE this object's row now (flushed); commit to keep it deleted."""
        session = self._session(connection_name)
        with translate():
            session.delete(self)
            session.flush()

    @property
    def dict(self):
        """The column values by name, private columns (passwords) left out."""
        return {attr.key: getattr(self, attr.key)
                for attr in inspect(type(self)).column_attrs
                if not getattr(attr.columns[0].type, 'private', False)}

    def __repr__(self):
        return f'<{type(self).__name__} id={self.id}>'


def _coerce_on_assignment(cls):
    """Let column types with `coerce_assigned` (Password) convert values as they
    are assigned, so a clear-text password never sits on an object."""
    # mapper.columns is there before the mappers are configured (column_attrs is not).
    for key, column in cls.__mapper__.columns.items():
        coerce = getattr(column.type, 'coerce_assigned', None)
        if coerce is not None:
            event.listen(getattr(cls, key), 'set',
                         lambda target, value, old, initiator, c=coerce: c(value),
                         retval=True)
