"""manage.py's subcommands answer --help, and `enqueue`'s grouping and
fallback (against a fake service; tests/e2e/test_cli.py runs the real one)."""
import io
import json

import pytest

import manage
from cli.client import Refused, ServiceError, defaults
from cli.enqueue import Enqueuer, numbered_lines

HELP = {
    ('setup',): [],
    ('test',): ['--q'],
    ('run',): ['processes'],
    ('db',): ['sync', 'clean'],
    ('bench',): ['--seconds', '--scenarios', '--no-naive'],
    ('enqueue',): ['FILE', '--batch', '--url', '--token', '--retries', '--no-progress'],
    ('jobs',): ['list', 'show', 'retry', 'cancel'],
    ('jobs', 'list'): ['--status', '--kind', '--limit', '--url', '--token'],
    ('jobs', 'show'): ['ID', '--url', '--token'],
    ('jobs', 'retry'): ['ID', '--status', '--kind', '--before', '--limit', '--url', '--token'],
    ('jobs', 'cancel'): ['ID', '--status', '--kind', '--before', '--url', '--token'],
}


@pytest.mark.parametrize('command', HELP, ids=' '.join)
def test_every_subcommand_has_help_naming_its_options(command, capsys):
    with pytest.raises(SystemExit) as exited:
        manage.main([*command, '--help'])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith('usage: manage.py ' + ' '.join(command))
    for option in HELP[command]:
        assert option in out


def test_every_subcommand_is_tested():
    sub = next(a for a in manage.parser()._actions if a.dest == 'command')
    assert set(sub.choices) == {c[0] for c in HELP}


def test_url_and_token_come_from_the_environment_then_env_file(tmp_path):
    env_file = tmp_path / '.env'
    assert defaults(str(env_file), {}) == ('http://127.0.0.1:8000', None)
    env_file.write_text('PORT=8123\nFLASK_API_TOKENS=from-file-1, from-file-2\n')
    assert defaults(str(env_file), {}) == ('http://127.0.0.1:8123', 'from-file-1')
    assert defaults(str(env_file), {'PORT': '9000', 'FLASK_API_TOKENS': 'env-token'}) == (
        'http://127.0.0.1:9000', 'env-token')


class FakeService:
    """Accepts payloads unless they hold "bad"; refuses whole batches holding
    one (400), as the service does; records every request."""

    def __init__(self, fail_after=None):
        self.requests = []
        self.accepted = []
        self.fail_after = fail_after

    def _maybe_down(self):
        if self.fail_after is not None and len(self.requests) > self.fail_after:
            raise ServiceError('the service did not answer')

    def post_batch(self, kind, payloads, schedule=None):
        self.requests.append(('batch', kind, len(payloads)) + ((schedule,) if schedule else ()))
        self._maybe_down()
        if kind == 'nope.kind':
            raise Refused(404, {'message': "unknown job kind 'nope.kind'"})
        if any('bad' in p for p in payloads):
            raise Refused(400, {'message': 'item 0 is not valid'})
        self.accepted += payloads
        return {'ids': list(range(len(payloads)))}

    def post_job(self, kind, payload, idempotency_key=None, schedule=None):
        self.requests.append(('one', kind, idempotency_key) + ((schedule,) if schedule else ()))
        self._maybe_down()
        if 'bad' in payload:
            raise Refused(400, {'message': f'invalid: {payload["bad"]!r} is too short'})
        self.accepted.append(payload)
        return {'id': 1}


def jsonl(*lines):
    return io.BytesIO(b''.join((line if isinstance(line, bytes) else json.dumps(line).encode())
                               + b'\n' for line in lines))


def run(stream, service, batch=3):
    return Enqueuer(service, batch).run(numbered_lines(stream))


def test_consecutive_lines_of_a_kind_go_in_batches():
    service = FakeService()
    summary = run(jsonl(*[{'kind': 'a', 'payload': {'n': i}} for i in range(7)],
                        {'kind': 'b', 'payload': {}},
                        {'kind': 'a', 'payload': {'k': 1}, 'idempotency_key': 'K1'},
                        {'kind': 'a', 'payload': {}}), service)
    assert service.requests == [('batch', 'a', 3), ('batch', 'a', 3), ('one', 'a', None),
                                ('one', 'b', None), ('one', 'a', 'K1'), ('one', 'a', None)]
    assert summary.accepted == 10 and summary.refused == [] and summary.exit_code == 0


def test_a_refused_batch_is_sent_line_by_line_and_bad_lines_are_numbered():
    service = FakeService()
    summary = run(jsonl({'kind': 'a', 'payload': {'n': 1}},
                        {'kind': 'a', 'payload': {'bad': 'x'}},
                        b'',
                        b'{not json',
                        {'kind': 'a', 'payload': {'n': 2}},
                        {'kind': 'a'},
                        {'kind': 'a', 'payload': {'n': 3}, 'extra': 1},
                        [1, 2],
                        b'\xff\xfe',
                        {'kind': 'nope.kind', 'payload': {}},
                        {'kind': 'nope.kind', 'payload': {}}), service, batch=10)
    assert service.accepted == [{'n': 1}, {'n': 2}]
    assert summary.accepted == 2
    refused = dict(summary.refused)
    assert sorted(refused) == [2, 4, 6, 7, 8, 9, 10, 11]
    assert "'x' is too short" in refused[2] and 'not valid JSON' in refused[4]
    assert '"payload" is required' in refused[6] and "'extra'" in refused[7]
    assert 'JSON object' in refused[8] and 'UTF-8' in refused[9]
    assert 'unknown job kind' in refused[10] and summary.exit_code == 1
    report = summary.report()
    assert report.startswith('accepted 2, refused 8') and 'line 4: not valid JSON' in report


def test_secret_values_are_not_repeated_in_reasons():
    summary = run(jsonl({'kind': 'user.create', 'payload': {'password': 'hunter2', 'bad': 'hunter2'}}),
                  FakeService())
    assert 'hunter2' not in summary.report() and '***' in summary.report()


def test_an_unreachable_service_stops_and_counts_what_was_not_sent():
    service = FakeService(fail_after=1)
    summary = run(jsonl(*[{'kind': 'a', 'payload': {'n': i}} for i in range(8)]), service)
    assert summary.accepted == 3 and summary.unsent == 5 and summary.exit_code == 2
    assert 'stopped at line 4' in summary.report() and len(service.requests) == 2


def test_the_progress_bar_counts_lines(capsys):
    from cli.enqueue import enqueue
    stream = jsonl(*[{'kind': 'a', 'payload': {'n': i}} for i in range(5)])
    summary = enqueue(stream, FakeService(), batch_size=2, total=5, progress=True)
    assert summary.accepted == 5
    assert '5/5' in capsys.readouterr().err


def test_scheduled_lines_go_with_their_schedule_and_batch_only_with_the_same_one():
    service = FakeService()
    at = '2030-01-31T12:00:00Z'
    summary = run(jsonl({'kind': 'k', 'payload': {}, 'run_at': at},
                        {'kind': 'k', 'payload': {}, 'run_at': at},
                        {'kind': 'k', 'payload': {}, 'delay': 1.5},
                        {'kind': 'k', 'payload': {}},
                        {'kind': 'k', 'payload': {}, 'delay': 2, 'run_at': at},
                        {'kind': 'k', 'payload': {}, 'delay': -1}), service)
    assert service.requests == [('batch', 'k', 2, {'run_at': at}),
                                ('one', 'k', None, {'delay': '1.5'}), ('one', 'k', None)]
    assert summary.accepted == 4
    assert [n for n, _ in summary.refused] == [5, 6]
    assert 'not both' in summary.refused[0][1] and 'seconds' in summary.refused[1][1]
