"""JSON Pointers (RFC 6901): how an error names the place it found."""


def escape(token):
    """One reference token: '~' and '/' escaped."""
    return str(token).replace('~', '~0').replace('/', '~1')


def pointer(*parts):
    """The pointer to the value at the path `parts` (keys and indexes)."""
    return '/' + '/'.join(escape(p) for p in parts)
