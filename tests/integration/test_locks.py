"""get_for_update against a row that a second connection holds locked."""
import threading
import time

import pytest
from sqlalchemy import text

from pg import exceptions
from tasks.music import Genre


@pytest.fixture
def rock(db):
    genre = Genre(name='Rock', description='r').add()
    db.pool.commit()
    return genre


@pytest.fixture
def other_holds_lock(db, rock):
    """A second connection that holds the row lock until released."""
    engine = db.pool.connection().engine
    conn = engine.connect()
    conn.execute(text('SELECT id FROM genre WHERE id = :i FOR UPDATE'), {'i': rock.id})
    yield conn
    conn.rollback()
    conn.close()


def test_nowait_raises_row_locked_at_once(db, rock, other_holds_lock):
    started = time.monotonic()
    with pytest.raises(exceptions.RowLockedError) as info:
        Genre.objects.get_for_update(id=rock.id)
    assert time.monotonic() - started < 1
    assert info.value.sqlstate == '55P03'
    assert isinstance(info.value, exceptions.TransientError)
    db.pool.rollback()


def test_waiting_form_waits_for_the_lock(db, rock, other_holds_lock):
    def release_later():
        time.sleep(0.5)
        other_holds_lock.execute(text('UPDATE genre SET name = :n WHERE id = :i'),
                                 {'n': 'Stone', 'i': rock.id})
        other_holds_lock.commit()

    releaser = threading.Thread(target=release_later)
    started = time.monotonic()
    releaser.start()
    locked = Genre.objects.get_for_update(id=rock.id, nowait=False)
    waited = time.monotonic() - started
    releaser.join()
    assert waited >= 0.4
    assert locked.name == 'Stone'  # read afresh once the lock was granted
    db.pool.rollback()


def test_skip_locked_treats_a_locked_row_as_absent(db, rock, other_holds_lock):
    with pytest.raises(exceptions.NotFoundError):
        Genre.objects.get_for_update(id=rock.id, skip_locked=True)
    db.pool.rollback()


def test_lock_is_held_until_commit(db, rock):
    Genre.objects.get_for_update(id=rock.id)
    engine = db.pool.connection().engine
    with engine.connect() as other:
        other.execute(text("SET lock_timeout = '100ms'"))
        with pytest.raises(Exception, match='lock'):
            other.execute(text('SELECT id FROM genre WHERE id = :i FOR UPDATE NOWAIT'),
                          {'i': rock.id})
    db.pool.commit()
    with engine.connect() as other:
        assert other.execute(text('SELECT id FROM genre WHERE id = :i FOR UPDATE NOWAIT'),
                             {'i': rock.id}).scalar() == rock.id


def test_contradictory_or_empty_requests_are_refused_at_once(db):
    with pytest.raises(exceptions.InvalidQueryError):
        Genre.objects.get_for_update()
    with pytest.raises(exceptions.InvalidQueryError):
        Genre.objects.get_for_update(id=1, nowait=True, skip_locked=True)
    with pytest.raises(ValueError):  # also a ValueError, as in Django
        Genre.objects.get_for_update(id=1, nowait=True, skip_locked=True)


def test_stale_identity_map_is_refreshed(db, rock):
    same = Genre.objects.get(id=rock.id)
    engine = db.pool.connection().engine
    with engine.begin() as other:
        other.execute(text('UPDATE genre SET description = :d WHERE id = :i'),
                      {'d': 'changed', 'i': rock.id})
    db.pool.commit()
    assert Genre.objects.get_for_update(id=rock.id).description == 'changed'
    assert same.description == 'changed'
    db.pool.rollback()
