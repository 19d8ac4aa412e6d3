"""A small client of the jobs API, and where its URL and token come from."""
import os
import time
from urllib.parse import quote

import requests
from urllib3.exceptions import NewConnectionError

from service.settings import api_tokens

DEFAULT_PORT = '8000'


class ServiceError(Exception):
    """The service could not be reached, or refused the whole request."""


class Refused(Exception):
    """The service answered 4xx: `status` and its error envelope `body`."""

    def __init__(self, status, body):
        self.status = status
        self.body = body
        super().__init__(f'{status}: {body.get("message", "")}')


def read_env_file(path):
    """The variables of .env (as honcho reads it), without writing one: a
    client must not create the service's secrets."""
    if not os.path.exists(path):
        return {}
    from honcho.environ import parse
    with open(path) as f:
        return parse(f.read())


def defaults(env_file, environ=None):
    """(url, token) of the local service: PORT and the first of FLASK_API_TOKENS,
    from the environment, else from .env."""
    environ = os.environ if environ is None else environ
    values = {**read_env_file(env_file), **environ}
    port = values.get('PORT') or DEFAULT_PORT
    tokens = api_tokens(values)
    return f'http://127.0.0.1:{port}', (tokens[0] if tokens else None)


def _never_sent(error):
    """Whether a connection error happened before the request left (safe to send again)."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], 'reason', None) if error.args else None
    return isinstance(reason, NewConnectionError)


class Client:
    def __init__(self, url, token=None, timeout=60, retries=5, sleep=time.sleep):
        self.url = url.rstrip('/')
        self.timeout = timeout
        self.retries = retries
        self.sleep = sleep
        self.http = requests.Session()
        if token:
            self.http.headers['Authorization'] = f'Bearer {token}'

    def request(self, method, path, **kwargs):
        """The JSON answer of a 2xx. Raises Refused on a 4xx; ServiceError when
        the service stays unreachable or answers 5xx. Only what was surely not
        recorded is sent again: a 503 (the service takes nothing back half-done)
        and a connection that never opened."""
        for attempt in range(self.retries + 1):
            delay = min(2 ** attempt * 0.5, 10)
            try:
                response = self.http.request(method, self.url + path, timeout=self.timeout,
                                             **kwargs)
            except requests.ConnectionError as error:
                if not _never_sent(error) or attempt == self.retries:
                    raise ServiceError(f'{method} {path}: the service at {self.url} did not '
                                       f'answer ({type(error).__name__})') from None
                self.sleep(delay)
                continue
            if response.status_code == 503 and attempt < self.retries:
                retry_after = response.headers.get('Retry-After', '')
                self.sleep(min(int(retry_after), 30) if retry_after.isdigit() else delay)
                continue
            body = self._json(response)
            if 400 <= response.status_code < 500:
                raise Refused(response.status_code, body)
            if response.status_code >= 300:
                raise ServiceError(f'{method} {path}: {response.status_code} '
                                   f'{body.get("message", "")}'.rstrip())
            return body
        raise AssertionError('unreachable')

    @staticmethod
    def _json(response):
        try:
            body = response.json()
        except ValueError:
            body = None
        return body if isinstance(body, dict) else {'message': response.text[:200]}

    def post_job(self, kind, payload, idempotency_key=None, schedule=None):
        """`schedule`: {'run_at': RFC 3339} or {'delay': seconds}, or None (at once)."""
        headers = {'Idempotency-Key': idempotency_key} if idempotency_key else {}
        return self.request('POST', f'/jobs/{quote(kind, safe="")}', json=payload,
                            headers=headers, params=schedule or None)

    def post_batch(self, kind, payloads, schedule=None):
        return self.request('POST', f'/jobs/{quote(kind, safe="")}/batch', json=payloads,
                            params=schedule or None)

    def list_jobs(self, status=None, kind=None, limit=None, cursor=None):
        params = {k: v for k, v in (('status', status), ('kind', kind), ('limit', limit),
                                    ('cursor', cursor)) if v is not None}
        return self.request('GET', '/jobs', params=params)

    def get_job(self, job_id):
        return self.request('GET', f'/jobs/{job_id}')

    def retry_job(self, job_id):
        return self.request('POST', f'/jobs/{job_id}/retry')

    def cancel_job(self, job_id):
        return self.request('POST', f'/jobs/{job_id}/cancel')

    def cancel_jobs(self, **filters):
        """Bulk cancel: filters status, kind, created_before (None: not given)."""
        return self.request('POST', '/jobs/cancel', params=_given(filters))

    def retry_jobs(self, **filters):
        """Bulk retry: filters status, kind, created_before, and limit."""
        return self.request('POST', '/jobs/retry', params=_given(filters))


def _given(params):
    return {k: v for k, v in params.items() if v is not None}
