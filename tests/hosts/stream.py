"""The fault tests' stream of jobs (tests/faults/stream.py) spread over the
web hosts of the topology."""
import requests

from tests.faults.stream import JobStream, post


class HostsStream(JobStream):
    """JobStream's jobs, its threads spread over the web hosts (thread n
    POSTs to web n mod 2); each answer noted with its web host's URL."""

    def __init__(self, topology, user_id, tag, threads=2, pause=0.02):
        super().__init__(topology, user_id, tag, threads=threads, pause=pause)
        self.urls = topology.web_urls
        self.by_answer = {}  # id(answer) -> url

    def _run(self, n):
        http = requests.Session()
        url = self.urls[n % len(self.urls)]
        i = 0
        while not self.stopping.is_set():
            answer = post(http, url, *self.job(n, i))
            with self._lock:
                self.answers.append(answer)
                self.by_answer[id(answer)] = url
            i += 1
            self.stopping.wait(self.pause)

    def post_to(self, url, n, i=0):
        """POST the stream's job (n, i) to `url` now; kept as the stream's own."""
        answer = post(requests.Session(), url, *self.job(n, i))
        with self._lock:
            self.answers.append(answer)
            self.by_answer[id(answer)] = url
        return answer

    def answers_of(self, url):
        return [a for a in self.answers if self.by_answer.get(id(a)) == url]
