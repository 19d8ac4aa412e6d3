"""Which servers to use: the configured ones, or embedded ones.

SERVICE_SERVERS (or --servers) says it: `external` always uses the configured
URLs, `embedded` always starts servers of our own, and `auto` (the default)
starts one only where the configured URL is the local default
(127.0.0.1:5432, 127.0.0.1:6379) and nothing answers there. Anything else (a
compose host name, another port) is somebody's real server: never replaced.
"""
import socket
from urllib.parse import urlsplit

MODES = ('auto', 'embedded', 'external')
LOCAL_HOSTS = ('127.0.0.1', 'localhost', '::1')
DEFAULT_PORTS = {'postgresql': 5432, 'redis': 6379}


def _address(url):
    """(scheme, host, port) of a database or broker URL, the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.split('+')[0]
    return scheme, parts.hostname, parts.port or DEFAULT_PORTS.get(scheme)


def answers(url, timeout=1.0):
    """True when something accepts a TCP connection at the URL's host and port."""
    _, host, port = _address(url)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def is_local_default(url):
    scheme, host, port = _address(url)
    return host in LOCAL_HOSTS and port == DEFAULT_PORTS.get(scheme)


def embed(mode, url):
    """True when the server of `url` should be an embedded one."""
    if mode not in MODES:
        raise ValueError(f'SERVICE_SERVERS must be one of {", ".join(MODES)}, not {mode!r}')
    if mode != 'auto':
        return mode == 'embedded'
    return is_local_default(url) and not answers(url)
