"""The log of a server the tests started, read while it runs or after."""


def read_log(path):
    """A server's log so far ('' when there is none yet)."""
    try:
        with open(path, errors='replace') as f:
            return f.read()
    except OSError:
        return ''
