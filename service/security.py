"""The start-up check of production mode (SERVICE_MODE=production, the
default): the service refuses to start with an open API or with a secret that
is missing, short or still the example's. The web front, the worker, beat and
Flower all build the app through `service.create_app`, so each of them refuses.

Messages name the setting and what is wrong with it, never its value: they
end up in process logs.
"""
from service.errors import ConfigError
from service.settings import api_tokens, split_list

MIN_SECRET_KEY = 32
MIN_TOKEN = 16
MIN_FLOWER_PASSWORD = 12

# Values that documentation and .env.example show; a value holding one of
# these is an example, whatever its length.
EXAMPLE_MARKERS = ('change-me', 'changeme', 'example')
EXAMPLE_VALUES = {'secret', 'password', 'admin', 'token', 'dev', 'development', 'test'}


class InsecureConfigError(ConfigError):
    """The configuration is not safe for production."""


def is_example(value):
    lowered = value.strip().lower()
    return lowered in EXAMPLE_VALUES or any(m in lowered for m in EXAMPLE_MARKERS)


def problems(config):
    """What keeps `config` from running in production, one phrase each (empty: nothing)."""
    found = []
    key = config.get('FLASK_SECRET_KEY') or ''
    if not key.strip():
        found.append('FLASK_SECRET_KEY is missing')
    elif is_example(key):
        found.append('FLASK_SECRET_KEY is the example value')
    elif len(key) < MIN_SECRET_KEY:
        found.append(f'FLASK_SECRET_KEY is shorter than {MIN_SECRET_KEY} characters')

    tokens = api_tokens(config)
    if not tokens:
        found.append('FLASK_API_TOKENS is empty (the API would be open to anyone)')
    for index, token in enumerate(tokens, 1):
        if is_example(token):
            found.append(f'FLASK_API_TOKENS token {index} is an example value')
        elif len(token) < MIN_TOKEN:
            found.append(f'FLASK_API_TOKENS token {index} is shorter than {MIN_TOKEN} characters')

    logins = split_list(config.get('FLOWER_BASIC_AUTH'))
    if not logins:
        found.append('FLOWER_BASIC_AUTH is missing')
    for index, login in enumerate(logins, 1):
        user, colon, password = login.partition(':')
        if not (colon and user and password):
            found.append(f'FLOWER_BASIC_AUTH login {index} is not user:password')
        elif is_example(password):
            found.append(f'FLOWER_BASIC_AUTH login {index} has the example password')
        elif len(password) < MIN_FLOWER_PASSWORD:
            found.append(f'FLOWER_BASIC_AUTH login {index} has a password shorter than '
                         f'{MIN_FLOWER_PASSWORD} characters')
    return found


def check(config):
    """Raise InsecureConfigError naming every problem when SERVICE_MODE is
    production and the configuration is unsafe; development passes as it is."""
    if config.get('SERVICE_MODE', 'production') != 'production':
        return
    found = problems(config)
    if found:
        raise InsecureConfigError(
            'refusing to start in production mode (SERVICE_MODE=production): '
            + '; '.join(found)
            + '. Set them (`python3 manage.py run` writes fresh ones into a new .env), '
              'or set SERVICE_MODE=development on a machine of your own.')
