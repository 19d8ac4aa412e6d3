"""Two databases (the seed's SQLALCHEMY_DB2) stay apart."""
from pg import DEFAULT, init_db
from tasks.music import Genre


def test_two_databases_stay_apart(app, db):
    assert set(db.pool.connections) == {DEFAULT, 'db2'}
    assert db.pool.connections['default'].engine.url.database != \
        db.pool.connections['db2'].engine.url.database
    Genre(name='in-default', description='x').add()
    Genre(name='in-db2-a', description='y').add(connection_name='db2')
    Genre(name='in-db2-b', description='y').add(connection_name='db2')
    db.pool.commit()
    assert Genre.objects.count() == 1
    assert Genre.objects.count(connection_name='db2') == 2
    assert Genre.objects.get(connection_name='db2', name='in-db2-a').name == 'in-db2-a'
    assert [g.name for g in Genre.objects.filter_by(connection_name='db2')] == [
        'in-db2-a', 'in-db2-b']


def test_commit_and_rollback_per_connection(app, db):
    Genre(name='a', description='x').add()
    Genre(name='b', description='x').add(connection_name='db2')
    db.pool.commit('db2')
    db.pool.rollback('default')
    assert Genre.objects.count() == 0
    assert Genre.objects.count(connection_name='db2') == 1


def test_instance_methods_follow_the_session_they_came_from(app, db):
    Genre(name='b', description='x').add(connection_name='db2')
    db.pool.commit()
    loaded = Genre.objects.get(connection_name='db2', name='b')
    loaded.description = 'changed'
    loaded.update()  # no connection_name: stays on db2
    db.pool.commit()
    assert Genre.objects.get(connection_name='db2', name='b').description == 'changed'
    assert Genre.objects.count() == 0


def test_init_db_is_once_per_app(app, db):
    assert init_db(app) is db
