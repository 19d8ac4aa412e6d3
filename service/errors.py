"""The service layer's errors: one root, ConfigError (the database's own
configuration errors are pg.exceptions.ConfigError)."""


class ConfigError(Exception):
    """The service's configuration is invalid."""

    def __init__(self, message=None):
        super().__init__(message or self.__doc__)
