"""gunicorn.conf.py's hooks, under the gevent worker the Procfile runs."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A greenlet that finished a request must let a waiting one run before it
# reads its connection's next request (else one keep-alive connection can
# keep a busy worker to itself).
FAIRNESS = '''
from gevent import monkey
monkey.patch_all()
import gevent, runpy
post_request = runpy.run_path('gunicorn.conf.py')['post_request']
order = []
def first():
    order.append('first served')
    post_request(None, None, {}, None)
    order.append('first reads its next request')
gevent.joinall([gevent.spawn(first), gevent.spawn(order.append, 'second served')])
print(order)
'''


def test_a_finished_request_yields_to_the_other_connections():
    out = subprocess.run([sys.executable, '-c', FAIRNESS], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == str(['first served', 'second served', 'first reads its next request'])


# Once the app is loaded, what loading made is frozen: the collector's full
# passes then scan only what requests make (they scanned the whole app: 50-85
# ms with every request waiting).
FROZEN = '''
import gc, runpy
hooks = runpy.run_path('gunicorn.conf.py')
import web
tracked = len(gc.get_objects())
hooks['post_worker_init'](None)
print(tracked, len(gc.get_objects()), gc.get_freeze_count())
'''


def test_the_loaded_app_is_kept_out_of_the_collectors_passes():
    out = subprocess.run([sys.executable, '-c', FROZEN], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    tracked, left, frozen = map(int, out.split())
    assert frozen >= tracked > 10_000
    assert left < tracked / 100
