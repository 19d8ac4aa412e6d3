"""The jobs the in-process tests post (one valid payload per kind) and read
back from the ledger."""

GENRE = {'name': 'jazz', 'description': 'swing'}

# One valid payload per kind: each must pass its schema, so a refusal of the
# same payload plus a field is the unknown field's doing.
VALID = {
    'genre.create': GENRE,
    'genre.update': {'id': 1, 'name': 'bebop'},
    'artist.create': {'name': 'Monk', 'description': 'piano', 'genre_id': 1},
    'album.create': {'name': 'Brilliant Corners', 'description': '1957', 'artist_id': 1},
    'user.create': {'username': 'ann', 'email': 'ann@example.com', 'password': 's3cret-pass'},
    'user.credit': {'user_id': 1, 'amount': 10},
}


def stored_jobs(app):
    """Every row of the jobs table (id order), read in an app context of its own."""
    from ledger import Job
    with app.app_context():
        return [{'id': j.id, 'kind': j.kind, 'status': j.status, 'payload': j.payload}
                for j in Job.objects.filter_by(order_by='id')]
