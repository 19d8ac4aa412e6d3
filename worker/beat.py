"""Beat's scheduler: the service's own periodic work (the recovery sweep,
the pruning) runs in the beat process itself, where a message on the jobs
queue would wait behind the very backlog the sweep is meant to help, and
would take a worker process from the jobs. Other entries (a
CELERY_BEAT_SCHEDULE given) are sent as usual."""
import logging

from celery.beat import PersistentScheduler

from service.queue import PRUNE_TASK, SWEEP_TASK

log = logging.getLogger(__name__)

IN_BEAT = (SWEEP_TASK, PRUNE_TASK)


class Scheduler(PersistentScheduler):
    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        if entry.task not in IN_BEAT:
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        entry = self.reserve(entry) if advance else entry
        try:
            self.app.tasks[entry.task](*entry.args, **entry.kwargs)
        except Exception:  # the next run tries again: beat goes on
            log.exception('%s failed', entry.task)
        return None
