"""What the database holds against what the client was told: every accepted
job applied exactly once, nothing refused applied (`assess`, `check`)."""
import re
import time
from collections import Counter
from decimal import Decimal
from typing import NamedTuple


def wait_finished(svc, ids, timeout):
    """Poll the ledger until every job of `ids` is finished or the time is
    up; return how many are not."""
    deadline = time.monotonic() + timeout
    while True:
        unfinished = svc.sql("SELECT count(*) FROM jobs WHERE id = ANY(:ids) "
                             "AND status NOT IN ('succeeded', 'failed')", ids=ids)[0][0]
        if not unfinished or time.monotonic() > deadline:
            return unfinished
        time.sleep(0.25)


def swept_count(svc):
    """How many jobs the recovery sweep published again (from beat's log: the
    sweep runs in beat, worker.beat)."""
    log = svc.processes['beat'].log() if 'beat' in svc.processes else ''
    found = re.findall(r'sweep: (?:published (\d+) stale jobs again|handed back \d+ messages '
                       r'of a lost worker \((\d+) jobs\))', log)
    return sum(int(number) for pair in found for number in pair if number)


def dropped_count(svc):
    """How many job tasks failed with an exception (from the worker's log):
    Celery acks such a message, so its job waits for the sweep to be found."""
    log = svc.processes['worker'].log() if 'worker' in svc.processes else ''
    return len(re.findall(r'Task (?!jobs\.sweep\[)[\w.]+\[[0-9a-f-]+\] raised unexpected', log))


class Figures(NamedTuple):
    accepted: int
    refused_503: int
    applied: int
    duplicates: int
    lost: int
    extra: int
    other_answers: Counter  # status (or None: no answer) -> count, for anything but 202/503
    bad_503: list  # 503 answers without Retry-After or the {code, message} envelope
    down_answers: Counter  # status -> count of the requests made while the fault lasted
    credit_expected: Decimal
    credit_found: Decimal
    statuses: Counter  # of the accepted jobs' rows
    unrecorded_ids: list  # jobs in the ledger that no 202 answered (half-accepted)

    def line(self, name, **more):
        extra = ' '.join(f'{k}={v}' for k, v in more.items())
        return (f'{name}: accepted={self.accepted} refused_503={self.refused_503} '
                f'applied={self.applied} duplicates={self.duplicates} lost={self.lost} {extra}')


def assess(svc, stream, user_id, down_from, down_until, known_job_ids=()):
    """Compare what the client was told with what the database holds."""
    answers = stream.answers
    accepted = [(kind, payload, job_id) for a in answers if a.status == 202
                for (kind, payload), job_id in zip(a.items, a.job_ids)]
    refused = [a for a in answers if a.status == 503]
    other = Counter(a.status for a in answers if a.status not in (202, 503))
    bad_503 = [a for a in refused if not a.retry_after or not isinstance(a.body, dict)
               or a.body.get('code') != 503 or not isinstance(a.body.get('message'), str)]
    down = Counter(a.status for a in answers if a.started >= down_from and a.ended <= down_until)

    ids = [job_id for _, _, job_id in accepted]
    statuses = Counter(dict(svc.sql('SELECT status, count(*) FROM jobs WHERE id = ANY(:ids) '
                                    'GROUP BY status', ids=ids)))
    recorded = {i for (i,) in svc.sql('SELECT id FROM jobs')}
    unrecorded = sorted(recorded - set(ids) - set(known_job_ids))

    names = Counter(name for (name,) in svc.sql('SELECT name FROM genre WHERE description = :t',
                                                t=stream.tag))
    wanted = Counter(p['name'] for kind, p, _ in accepted if kind == 'genre.create')
    assert all(n == 1 for n in wanted.values()), 'the stream sent a genre name twice'
    duplicates = sum(n - 1 for n in names.values() if n > 1)
    lost_genres = sum(1 for name in wanted if name not in names)
    extra = sum(1 for name in names if name not in wanted)
    credit_expected = sum((Decimal(p['amount']) for kind, p, _ in accepted
                           if kind == 'user.credit'), Decimal(0))
    credit_found = svc.sql('SELECT credit_score FROM users WHERE id = :i', i=user_id)[0][0]
    credit_jobs = sum(1 for kind, _, _ in accepted if kind == 'user.credit')
    lost_credit_jobs = credit_jobs - svc.sql(
        "SELECT count(*) FROM jobs WHERE id = ANY(:ids) AND kind = 'user.credit' "
        "AND status = 'succeeded'", ids=ids)[0][0]
    return Figures(
        accepted=len(accepted), refused_503=len(refused), applied=statuses.get('succeeded', 0),
        duplicates=duplicates, lost=lost_genres + lost_credit_jobs, extra=extra,
        other_answers=other, bad_503=bad_503[:5], down_answers=down,
        credit_expected=credit_expected, credit_found=credit_found, statuses=statuses,
        unrecorded_ids=unrecorded[:20])


def check(figures, *, logs=''):
    """The guarantees: no answer but 202/503; a 503 always with Retry-After
    and the envelope; only 503 while the fault lasted; every accepted job
    applied once; nothing else applied; the credit is the exact sum."""
    f = figures
    assert not f.other_answers, (f'answers other than 202/503: {dict(f.other_answers)}', logs)
    assert not f.bad_503, f'503 without Retry-After or the error envelope: {f.bad_503}'
    assert f.down_answers and set(f.down_answers) == {503}, (
        f'while the fault lasted the answers were {dict(f.down_answers)}')
    assert f.statuses == Counter({'succeeded': f.accepted}), (
        f'accepted jobs by status: {dict(f.statuses)}', logs)
    assert f.duplicates == 0 and f.lost == 0 and f.extra == 0, (f, logs)
    assert f.credit_found == f.credit_expected, (f.credit_found, f.credit_expected)
    assert not f.unrecorded_ids, f'jobs in the ledger that no 202 answered: {f.unrecorded_ids}'


def service_logs(svc, tail=4000):
    return '\n'.join(f'--- {name} ---\n{p.log()[-tail:]}' for name, p in svc.processes.items())
