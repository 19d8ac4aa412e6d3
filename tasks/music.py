"""The music catalogue: genres, artists and their albums."""
from sqlalchemy import Column, ForeignKey, Integer, String
from sqlalchemy.orm import relationship

from pg.exceptions import NotFoundError
from pg.orm import BaseModel
from tasks.kinds import JobFailed, kind


class Genre(BaseModel):
    __tablename__ = 'genre'
    name = Column(String(256))
    description = Column(String(256))


class Artist(BaseModel):
    __tablename__ = 'artist'
    name = Column(String(256))
    description = Column(String(256))
    albums = relationship('Album', backref='artist')
    genre_id = Column(Integer, ForeignKey('genre.id'))


class Album(BaseModel):
    __tablename__ = 'album'
    name = Column(String(256))
    description = Column(String(256))
    artist_id = Column(Integer, ForeignKey('artist.id'))


def _text(max_length):
    return {'type': 'string', 'minLength': 1, 'maxLength': max_length}


def _id():
    return {'type': 'integer', 'minimum': 1, 'maximum': 2**31 - 1}


def _insert_many(model):
    """A batch of creations as one multi-row INSERT; results in payload order."""
    def insert_many(payloads):
        return [{'id': row_id} for row_id in model.objects.insert_many(payloads)]
    return insert_many


@kind('genre.create', handle_many=_insert_many(Genre), schema={
    'type': 'object',
    'properties': {'name': _text(256), 'description': _text(256)},
    'required': ['name', 'description'],
    'additionalProperties': False,
})
def create_genre(payload):
    """Insert a genre."""
    return {'id': Genre(**payload).add().id}


@kind('genre.update', schema={
    'type': 'object',
    'properties': {'id': _id(), 'name': _text(256), 'description': _text(256)},
    'required': ['id'],
    'anyOf': [{'required': ['name']}, {'required': ['description']}],
    'additionalProperties': False,
})
def update_genre(payload):
    """Change the name and/or description of a genre."""
    genre_id = payload.pop('id')
    try:
        genre = Genre.objects.get(id=genre_id)
    except NotFoundError:
        raise JobFailed(f'genre {genre_id} does not exist') from None
    for field, value in payload.items():
        setattr(genre, field, value)
    genre.update()
    return {'id': genre.id}


@kind('artist.create', handle_many=_insert_many(Artist), schema={
    'type': 'object',
    'properties': {'name': _text(256), 'description': _text(256), 'genre_id': _id()},
    'required': ['name', 'description', 'genre_id'],
    'additionalProperties': False,
})
def create_artist(payload):
    """Insert an artist of an existing genre."""
    return {'id': Artist(**payload).add().id}


@kind('album.create', handle_many=_insert_many(Album), schema={
    'type': 'object',
    'properties': {'name': _text(256), 'description': _text(256), 'artist_id': _id()},
    'required': ['name', 'description', 'artist_id'],
    'additionalProperties': False,
})
def create_album(payload):
    """Insert an album of an existing artist."""
    return {'id': Album(**payload).add().id}
