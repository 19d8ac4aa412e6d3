"""A stand-in for the bound Celery task that worker.execution.run_job is
given, for driving the worker's code without Celery."""
from types import SimpleNamespace


class Task:
    """What run_job uses of a bound Celery task; retries are recorded."""

    def __init__(self, name):
        self.name = name
        self.request = SimpleNamespace(retries=0)
        self.later = []

    def apply_async(self, args, countdown):
        self.later.append(args[0])

    def retry(self, countdown, exc):
        raise AssertionError(f'unexpected retry of the message: {exc}')
