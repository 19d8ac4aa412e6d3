"""SERVICE_MODE: production refuses to start with an open API or a missing,
short or example secret, naming the setting but never its value;
development runs as configured."""
import os

import pytest

import manage
from service import settings
from service.errors import ConfigError
from service.security import InsecureConfigError, check, problems
from tests.settings import DATABASE_URL, redis_url

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GOOD = {
    'SERVICE_MODE': 'production',
    'FLASK_SECRET_KEY': 'k' * 20 + 'Q7vX2mN9pL4sR8tW1yZ3',
    'FLASK_API_TOKENS': 'tok-9f8e7d6c5b4a3f2e1d0c',
    'FLOWER_BASIC_AUTH': 'ops:Fl0wer-pass-4e5f6a',
}

# (overrides, the setting the refusal names, the secret that must not be shown)
BAD = {
    'key missing': ({'FLASK_SECRET_KEY': ''}, 'FLASK_SECRET_KEY is missing', None),
    'key short': ({'FLASK_SECRET_KEY': 'short-Zq81'}, 'FLASK_SECRET_KEY is shorter', 'short-Zq81'),
    'key example': ({'FLASK_SECRET_KEY': 'change-me'}, 'FLASK_SECRET_KEY is the example', None),
    'key example, long': ({'FLASK_SECRET_KEY': 'change-me-to-something-long-Wq93kd82jd'},
                          'FLASK_SECRET_KEY is the example', 'Wq93kd82jd'),
    'no token': ({'FLASK_API_TOKENS': ''}, 'FLASK_API_TOKENS is empty', None),
    'blank tokens': ({'FLASK_API_TOKENS': ' , '}, 'FLASK_API_TOKENS is empty', None),
    'example token': ({'FLASK_API_TOKENS': 'change-me'}, 'token 1 is an example', None),
    'second token short': ({'FLASK_API_TOKENS': GOOD['FLASK_API_TOKENS'] + ',Tk7-short'},
                           'token 2 is shorter', 'Tk7-short'),
    'flower example': ({'FLOWER_BASIC_AUTH': 'admin:change-me'},
                       'FLOWER_BASIC_AUTH login 1 has the example password', None),
    'flower missing': ({'FLOWER_BASIC_AUTH': ''}, 'FLOWER_BASIC_AUTH is missing', None),
    'flower no password': ({'FLOWER_BASIC_AUTH': 'admin-Hq72'},
                           'FLOWER_BASIC_AUTH login 1 is not user:password', 'Hq72'),
    'flower short': ({'FLOWER_BASIC_AUTH': 'admin:Pw-81kq'},
                     'FLOWER_BASIC_AUTH login 1 has a password shorter', 'Pw-81kq'),
}


def config(**overrides):
    return settings.load(environ={}, overrides={**GOOD, **overrides})


def service_app(**overrides):
    from web import create_app
    return create_app(config={'SQLALCHEMY_DEFAULT': DATABASE_URL,
                              'CELERY_BROKER_URL': redis_url(15),
                              **GOOD, **overrides})


def test_production_is_the_default_and_modes_are_checked():
    assert settings.load(environ={})['SERVICE_MODE'] == 'production'
    assert settings.load(environ={'SERVICE_MODE': ' Development '})['SERVICE_MODE'] == 'development'
    with pytest.raises(ConfigError, match='SERVICE_MODE'):
        settings.load(environ={'SERVICE_MODE': 'prod'})


def test_good_secrets_pass():
    assert problems(config()) == []
    check(config())


@pytest.mark.parametrize('case', BAD)
def test_production_refuses_each_bad_secret_without_showing_it(case):
    overrides, named, secret = BAD[case]
    with pytest.raises(InsecureConfigError) as refused:
        service_app(**overrides)
    message = str(refused.value)
    assert named in message and 'SERVICE_MODE=development' in message
    for shown in (secret, *GOOD.values()):
        if shown and shown != 'production':
            assert shown not in message and shown not in repr(refused.value)


def test_every_problem_is_named_at_once():
    message = str(pytest.raises(InsecureConfigError, check, settings.load(environ={})).value)
    for name in ('FLASK_SECRET_KEY', 'FLASK_API_TOKENS', 'FLOWER_BASIC_AUTH'):
        assert name in message


@pytest.mark.parametrize('case', BAD)
def test_development_starts_whatever_the_secrets(case):
    overrides, _, _ = BAD[case]
    service_app(**{**overrides, 'SERVICE_MODE': 'development'})


def test_development_allows_an_open_api():
    app = service_app(SERVICE_MODE='development', FLASK_API_TOKENS='')
    assert app.test_client().get('/kinds').status_code == 200


def test_production_api_needs_the_token():
    app = service_app()
    client = app.test_client()
    assert client.get('/jobs/1').status_code == 401
    assert client.get('/jobs/1', headers={'Authorization': 'Bearer wrong-token-0123456'}
                      ).status_code == 401
    token = GOOD['FLASK_API_TOKENS']
    assert client.get('/jobs/1', headers={'Authorization': f'Bearer {token}'}).status_code != 401
    assert app.config['SECRET_KEY'] == GOOD['FLASK_SECRET_KEY']


def env_example():
    with open(os.path.join(ROOT, '.env.example')) as f:
        from honcho.environ import parse
        text = f.read()
        return text, parse(text)


def test_env_example_secrets_are_refused_until_run_replaces_them():
    text, values = env_example()
    found = problems(settings.load(environ=values))
    assert values['SERVICE_MODE'] == 'production'
    assert {p.split()[0] for p in found} == {'FLASK_SECRET_KEY', 'FLASK_API_TOKENS',
                                            'FLOWER_BASIC_AUTH'}
    from honcho.environ import parse
    fresh = parse(manage.fresh_secrets(text))
    assert problems(settings.load(environ=fresh)) == []
    again = parse(manage.fresh_secrets(text))
    assert all(fresh[name] != again[name] for name in manage.SECRETS)


def test_an_older_env_file_gets_the_secrets_it_lacks():
    older = 'PORT=8000\nFLOWER_BASIC_AUTH=admin:Kept-password-123\n'
    from honcho.environ import parse
    values = parse(manage.fresh_secrets(older))
    assert values['FLOWER_BASIC_AUTH'] == 'admin:Kept-password-123'
    assert values['PORT'] == '8000'
    assert problems(settings.load(environ={**values, 'SERVICE_MODE': 'production'})) == []
