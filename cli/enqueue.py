"""`manage.py enqueue FILE`: post the jobs of a JSON Lines file to the
running service.

Each line is `{"kind": ..., "payload": {...}}`, optionally with
"idempotency_key", and "run_at" (RFC 3339) or "delay" (seconds) to schedule
it (sent as the query parameters of the same name; consecutive lines of one
kind and one schedule share a batch). Consecutive lines of one kind go as one
POST /jobs/<kind>/batch of up to `batch_size`; a line with an idempotency key
goes alone (POST /jobs/<kind> with the Idempotency-Key header), so that
sending the file again returns its job instead of making a second one.
A batch refused as a whole (400, 413) is sent again line by line, so only its
bad lines are refused.
"""
import json
import re
from dataclasses import dataclass, field
from typing import Optional

from tqdm import tqdm

from cli.client import Refused, ServiceError

FIELDS = ('kind', 'payload', 'idempotency_key', 'run_at', 'delay')
# Fields whose values are not repeated in a refusal reason (the service's
# schema messages quote the value they refuse).
SECRET_FIELD = re.compile('password|secret|token', re.IGNORECASE)
REASON_LENGTH = 300
SPLIT_STATUSES = (400, 413)   # a batch refused for one of its items, or its size
STOP_STATUSES = (401, 403)    # nothing will be accepted: stop


@dataclass
class Line:
    number: int
    kind: str
    payload: dict
    key: Optional[str] = None
    schedule: Optional[dict] = None  # {'run_at': ...} or {'delay': ...}


@dataclass
class Summary:
    accepted: int = 0
    refused: list = field(default_factory=list)  # (line number, reason)
    unsent: int = 0
    stopped: Optional[str] = None
    first_unsent: Optional[int] = None

    @property
    def exit_code(self):
        return 2 if self.unsent else 1 if self.refused else 0

    def report(self, shown=10):
        lines = [f'accepted {self.accepted}, refused {len(self.refused)}'
                 + (f', not sent {self.unsent}' if self.unsent else '')]
        for number, reason in sorted(self.refused)[:shown]:
            lines.append(f'  line {number}: {reason}')
        if len(self.refused) > shown:
            lines.append(f'  ... and {len(self.refused) - shown} more refused lines')
        if self.stopped:
            lines.append(f'stopped at line {self.first_unsent}: {self.stopped}')
        return '\n'.join(lines)


class Stop(Exception):
    """Nothing more can be sent (unreachable service, refused token)."""


def parse_line(number, raw):
    """The Line of one line of the file; ValueError(reason) when it is not one."""
    try:
        text = raw.decode('utf-8-sig' if number == 1 else 'utf-8')
    except UnicodeDecodeError as error:
        raise ValueError(f'not valid UTF-8 at byte {error.start}') from None
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ValueError(f'not valid JSON: {error}') from None
    if not isinstance(document, dict):
        raise ValueError('a line is a JSON object {"kind": ..., "payload": {...}}')
    unknown = sorted(set(document) - set(FIELDS))
    if unknown:
        raise ValueError(f'unknown field {unknown[0]!r} (fields: {", ".join(FIELDS)})')
    kind, payload, key, run_at, delay = (document.get(name) for name in FIELDS)
    if not isinstance(kind, str) or not kind:
        raise ValueError('"kind" is required: a job kind name (GET /kinds lists them)')
    if not isinstance(payload, dict):
        raise ValueError('"payload" is required: a JSON object')
    if key is not None and (not isinstance(key, str) or not key):
        raise ValueError('"idempotency_key" is a non-empty string')
    if run_at is not None and delay is not None:
        raise ValueError('give "run_at" or "delay", not both')
    if run_at is not None and (not isinstance(run_at, str) or not run_at):
        raise ValueError('"run_at" is an RFC 3339 date-time string')
    if delay is not None and (isinstance(delay, bool) or not isinstance(delay, (int, float))
                              or delay < 0):
        raise ValueError('"delay" is a number of seconds, 0 or more')
    schedule = ({'run_at': run_at} if run_at is not None
                else {'delay': repr(delay)} if delay is not None else None)
    return Line(number, kind, payload, key, schedule)


def numbered_lines(stream):
    """(line number, bytes) of every line that is not blank."""
    for number, raw in enumerate(stream, 1):
        if raw.strip():
            yield number, raw


def _reason(refused, payload):
    """The service's message, without the values of secret-looking fields."""
    reason = str(refused.body.get('message') or f'refused ({refused.status})')
    for name, value in payload.items():
        if SECRET_FIELD.search(name) and isinstance(value, str) and value:
            reason = reason.replace(value, '***')
    return reason[:REASON_LENGTH]


class Enqueuer:
    def __init__(self, client, batch_size=100, bar=None):
        self.client = client
        self.batch_size = max(1, batch_size)
        self.bar = bar
        self.summary = Summary()

    def _done(self, count=1):
        if self.bar is not None:
            self.bar.update(count)

    def refuse(self, number, reason):
        self.summary.refused.append((number, reason))
        self._done()

    def _stop(self, line, reason):
        self.summary.stopped = reason
        self.summary.first_unsent = line.number
        raise Stop()

    def send_one(self, line):
        try:
            self.client.post_job(line.kind, line.payload, idempotency_key=line.key,
                                 schedule=line.schedule)
        except Refused as refused:
            if refused.status in STOP_STATUSES:
                self._stop(line, _reason(refused, {}))
            self.refuse(line.number, _reason(refused, line.payload))
            return
        except ServiceError as error:
            self._stop(line, str(error))
        self.summary.accepted += 1
        self._done()

    def send(self, group):
        """Send a group of lines of one kind; raise Stop, having counted the
        lines of the group not sent, when nothing more can be."""
        pending = list(group)
        try:
            if len(group) == 1:
                self.send_one(group[0])
                pending.clear()
                return
            try:
                self.client.post_batch(group[0].kind, [line.payload for line in group],
                                       schedule=group[0].schedule)
            except Refused as refused:
                if refused.status in STOP_STATUSES:
                    self._stop(group[0], _reason(refused, {}))
                if refused.status in SPLIT_STATUSES:
                    while pending:
                        self.send_one(pending[0])
                        pending.pop(0)
                    return
                for line in group:  # e.g. 404 unknown kind: the same answer for each line
                    self.refuse(line.number, _reason(refused, line.payload))
                pending.clear()
                return
            except ServiceError as error:
                self._stop(group[0], str(error))
            self.summary.accepted += len(group)
            self._done(len(group))
            pending.clear()
        finally:
            self.summary.unsent += len(pending)

    def run(self, lines):
        """Send every (number, bytes) line; return the Summary."""
        group = []
        lines = iter(lines)
        try:
            for number, raw in lines:
                try:
                    line = parse_line(number, raw)
                except ValueError as error:
                    self.refuse(number, str(error)[:REASON_LENGTH])
                    continue
                if group and (line.kind != group[0].kind or line.key is not None
                              or line.schedule != group[0].schedule
                              or len(group) >= self.batch_size):
                    try:
                        self.send(group)
                    except Stop:
                        self.summary.unsent += 1  # this line, read but not sent
                        raise
                    group = []
                if line.key is not None:
                    self.send([line])
                else:
                    group.append(line)
            if group:
                self.send(group)
        except Stop:
            self.summary.unsent += sum(1 for _ in lines)  # the lines never read
        return self.summary


def enqueue(stream, client, batch_size=100, total=None, progress=None):
    """Post the JSON Lines of the binary `stream`; return the Summary.
    `progress`: True, False, or None (a bar when stderr is a terminal)."""
    with tqdm(total=total, unit='job', disable=None if progress is None else not progress,
              dynamic_ncols=True) as bar:
        return Enqueuer(client, batch_size, bar).run(numbered_lines(stream))


def count_lines(path):
    with open(path, 'rb') as f:
        return sum(1 for raw in f if raw.strip())
