import pytest

from service import settings
from app import get_or_create_app
from service.errors import ConfigError


def test_prefixed_variables_load_under_their_full_names():
    config = settings.load({'FLASK_CONFIG_PREFIXES': 'AWS, DB', 'AWS_SECRET': 's',
                            'DB_USER': 'u', 'DBX_OTHER': 'no', 'OTHER': 'no',
                            'FLASK_ANYTHING': 'yes'})
    assert config['AWS_SECRET'] == 's' and config['DB_USER'] == 'u'
    assert config['FLASK_ANYTHING'] == 'yes'  # FLASK is always a prefix
    assert 'DBX_OTHER' not in config and 'OTHER' not in config


def test_known_settings_are_typed_with_defaults():
    config = settings.load({'FLASK_MAX_CONTENT_LENGTH': '2048', 'SQLALCHEMY_POOL_PRE_PING': 'off',
                            'FLASK_CONFIG_PREFIXES': 'SQLALCHEMY'})
    assert config['FLASK_MAX_CONTENT_LENGTH'] == 2048
    assert config['SQLALCHEMY_POOL_PRE_PING'] is False
    assert config['SQLALCHEMY_POOL_SIZE'] == settings.SETTINGS['SQLALCHEMY_POOL_SIZE'].default


def test_invalid_setting_is_a_clear_error():
    with pytest.raises(ConfigError, match='FLASK_MAX_CONTENT_LENGTH'):
        settings.load({'FLASK_MAX_CONTENT_LENGTH': 'lots'})


def test_every_setting_is_documented():
    assert all(s.doc for s in settings.SETTINGS.values())


def test_overrides_win_and_reach_flask(monkeypatch):
    monkeypatch.setenv('FLASK_MAX_CONTENT_LENGTH', '10')
    app = get_or_create_app('t', config={'FLASK_MAX_CONTENT_LENGTH': 99})
    assert app.config['MAX_CONTENT_LENGTH'] == 99


def test_inside_an_app_context_the_current_app_is_returned():
    app = get_or_create_app('outer')
    with app.app_context():
        assert get_or_create_app('inner') is app
    assert get_or_create_app('again') is not app


def test_routes_are_registered():
    def hello():
        return 'hi'
    app = get_or_create_app('r', routes=({'rule': '/hello', 'endpoint': 'hello',
                                          'view_func': hello},))
    assert app.test_client().get('/hello').data == b'hi'


def test_readme_documents_every_setting():
    import os
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, 'README.md')) as f:
        readme = f.read()
    missing = [name for name in settings.SETTINGS if f'`{name}`' not in readme]
    assert not missing
