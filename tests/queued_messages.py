"""What waits in a Redis broker's queue, read without consuming it."""
import base64
import json


def published_ids(broker):
    """The job ids in the messages waiting in the queue."""
    ids = []
    for raw in broker.lrange('jobs', 0, -1):
        [arg], _, _ = json.loads(base64.b64decode(json.loads(raw)['body']))
        ids.extend(arg if isinstance(arg, list) else [arg])
    return sorted(ids)
