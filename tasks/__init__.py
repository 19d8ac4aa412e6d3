"""The domains of the service, one module each: its models and its job kinds.

A new kind is one module here: `load_all()` imports every module of the
package, and the web front, /kinds and the worker take their kinds from the
registry it fills.
"""
import importlib
import pkgutil

from tasks.kinds import (REGISTRY, InvalidPayload, JobFailed, JobTimeout, Kind, KindError,
                         RetryLater, kind)


def load_all(extra=()):
    """Import every module of this package, and the `extra` modules named
    (WORKER_KIND_MODULES: kinds declared outside it); return the kinds by name."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f'{__name__}.{module.name}')
    for name in extra:
        importlib.import_module(name)
    return REGISTRY


__all__ = ['REGISTRY', 'InvalidPayload', 'JobFailed', 'JobTimeout', 'Kind', 'KindError',
           'RetryLater', 'kind', 'load_all']
