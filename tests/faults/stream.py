"""The client's side of a fault test: a `JobStream` POSTs jobs for the whole
run and keeps every answer with its time."""
import threading
import time
import uuid
from typing import NamedTuple, Optional

import requests


class Answer(NamedTuple):
    kind: str
    payload: dict
    started: float  # time.monotonic()
    ended: float
    status: Optional[int]  # None: no HTTP answer at all
    retry_after: Optional[str]
    body: object  # the JSON document, or the text when not JSON
    error: Optional[str] = None

    @property
    def job_ids(self):
        if self.status != 202:
            return []
        return self.body['ids'] if 'ids' in self.body else [self.body['id']]

    @property
    def items(self):
        """(kind, payload) of each job of the request (a batch holds several)."""
        if isinstance(self.payload, list):
            return [(self.kind, p) for p in self.payload]
        return [(self.kind, self.payload)]


def post(http, url, kind, payload, batch=False):
    started = time.monotonic()
    try:
        r = http.post(f'{url}/jobs/{kind}' + ('/batch' if batch else ''), json=payload,
                      timeout=30)
    except requests.RequestException as error:
        return Answer(kind, payload, started, time.monotonic(), None, None, None,
                      f'{type(error).__name__}: {error}')
    try:
        body = r.json()
    except ValueError:
        body = r.text[:500]
    return Answer(kind, payload, started, time.monotonic(), r.status_code,
                  r.headers.get('Retry-After'), body)


class JobStream:
    """Client threads POSTing mixed jobs until stopped: genre.create with
    unique names (description = the run's tag) and user.credit of known
    integer amounts on one user. Every answer is kept."""

    def __init__(self, svc, user_id, tag, threads=1, pause=0.01):
        self.url, self.user_id, self.tag, self.pause = svc.url, user_id, tag, pause
        self.answers = []
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in range(threads)]
        self.bursts = 0

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)
        assert not any(t.is_alive() for t in self.threads), 'a client thread is stuck'

    def _keep(self, answer):
        with self._lock:
            self.answers.append(answer)

    def job(self, n, i):
        if i % 2 == 0:
            return 'genre.create', {'name': f'{self.tag}-{n}-{i}', 'description': self.tag}
        return 'user.credit', {'user_id': self.user_id, 'amount': i % 9 + 1}

    def _run(self, n):
        http = requests.Session()
        i = 0
        while not self.stopping.is_set():
            self._keep(post(http, self.url, *self.job(n, i)))
            i += 1
            self.stopping.wait(self.pause)

    def burst(self, size):
        """POST two batches at once (genres, then credits): a backlog of
        messages in the broker, just before a fault. Returns the answers."""
        self.bursts += 1
        http = requests.Session()
        genres = [{'name': f'{self.tag}-burst{self.bursts}-{i}', 'description': self.tag}
                  for i in range(size // 2)]
        credits = [{'user_id': self.user_id, 'amount': i % 5 + 1} for i in range(size // 2)]
        answers = [post(http, self.url, 'genre.create', genres, batch=True),
                   post(http, self.url, 'user.credit', credits, batch=True)]
        for answer in answers:
            self._keep(answer)
        return answers


def make_user(svc):
    """A user with no credit; returns (user id, id of the job that made it)."""
    job = svc.run('user.create', {'username': 'faults', 'email': 'faults@example.com',
                                  'password': 'long enough'}, timeout=30)
    assert job['status'] == 'succeeded', job
    return job['result']['id'], job['id']


def unique_tag(prefix):
    return f'{prefix}-{uuid.uuid4().hex[:8]}'


def get_health(svc):
    started = time.monotonic()
    try:
        r = requests.get(svc.url + '/health', timeout=30)
    except requests.RequestException as error:
        return Answer('health', {}, started, time.monotonic(), None, None, None, str(error))
    try:
        body = r.json()
    except ValueError:
        body = r.text[:500]
    return Answer('health', {}, started, time.monotonic(), r.status_code,
                  r.headers.get('Retry-After'), body)
