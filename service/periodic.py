"""Periodic jobs (WORKER_PERIODIC_JOBS): a kind and its payload on a cron
schedule, in UTC. Beat's due pass enqueues each slot through the ledger with
the idempotency key `<name>@<slot time>` in the scope 'periodic', so two
beats never enqueue one slot twice. Only the latest slot at or before now is
looked at: of the slots missed while beat was down, the latest runs, once."""
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from croniter import croniter

from service.errors import ConfigError

SCOPE = 'periodic'
NAME_LENGTH = 200


class Periodic(NamedTuple):
    name: str
    kind: str
    payload: dict
    cron: str

    def latest_slot(self, now):
        """The newest slot at or before `now` (an aware datetime, UTC)."""
        # croniter's get_prev is strictly before its start: start just after now.
        return croniter(self.cron, now + timedelta(microseconds=1)).get_prev(datetime)

    def key(self, slot):
        return f'{self.name}@{slot.astimezone(timezone.utc).isoformat()}'


def parse(config, registry):
    """The periodic jobs of the config, checked against the kinds of
    `registry`. Raises ConfigError naming the entry that is wrong."""
    entries = []
    for name, entry in config['WORKER_PERIODIC_JOBS'].items():
        where = f'WORKER_PERIODIC_JOBS[{name!r}]'
        if not name or len(name) > NAME_LENGTH or not name.isprintable():
            raise ConfigError(f'{where}: a name is 1 to {NAME_LENGTH} printable characters')
        if not isinstance(entry, dict) or set(entry) - {'kind', 'payload', 'cron'} \
                or not {'kind', 'cron'} <= set(entry):
            raise ConfigError(f'{where} is {{"kind": ..., "payload": {{...}}, "cron": ...}}')
        kind = registry.get(entry['kind'])
        if kind is None:
            raise ConfigError(f'{where}: unknown job kind {entry["kind"]!r}')
        cron = entry['cron']
        if not isinstance(cron, str) or not croniter.is_valid(cron):
            raise ConfigError(f'{where}: {cron!r} is not a cron schedule')
        payload = entry.get('payload', {})
        error = next(iter(kind.validator.iter_errors(payload)), None)
        if error is not None:
            # The path and the rule only: the message may quote a secret value.
            raise ConfigError(f'{where}: the payload is not a valid {kind.name} payload '
                              f'({error.json_path} does not satisfy {error.validator})')
        entries.append(Periodic(name, kind.name, payload, cron))
    return entries


def utc_now():
    return datetime.now(timezone.utc)
