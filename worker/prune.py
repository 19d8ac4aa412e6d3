"""Retention (run by beat): finished jobs past their outcome's age are
deleted in small batches, for at most BUDGET_SECONDS a run."""
import logging

from flask import current_app

import ledger

log = logging.getLogger(__name__)

BUDGET_SECONDS = 2.0


def prune_expired(config, budget_seconds=BUDGET_SECONDS):
    """Delete the expired finished jobs (a retention of 0 keeps them);
    return {status: deleted}."""
    ages = {status: config[f'WORKER_RETAIN_{status.upper()}_SECONDS']
            for status in ledger.Status.finished()}
    ages = {status: age for status, age in ages.items() if age > 0}
    if not ages:
        return {}
    session = current_app.extensions['pg'].pool.connection().session
    deleted = ledger.prune(session, ages, config['FLASK_IDEMPOTENCY_WINDOW_SECONDS'],
                           batch=config['WORKER_PRUNE_BATCH'], budget_seconds=budget_seconds)
    if any(deleted.values()):
        log.info('prune: deleted %s', ', '.join(f'{n} {s}' for s, n in deleted.items()),
                 extra={'deleted': deleted})
    return deleted
