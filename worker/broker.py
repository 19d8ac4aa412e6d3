"""The worker's Redis transport: kombu's, except that losing the broker
connection no longer kills the worker.

On a lost connection, Celery's consumer closes the broken connection after
kombu has already detached the transport from it (Connection.collect). When
closing a channel failed midway the first time (Redis gone while a BRPOP was
pending), the channel is closed again then, still holding the messages it
had prefetched, and tries to give them back to Redis through the detached
transport: AttributeError ('NoneType' object has no attribute 'hostname'),
which Celery treats as unrecoverable. The worker process exits and nothing
consumes the queue any more.

There is no broker left to give those messages back to at that point, so
the channel skips it. Nothing is lost: Redis redelivers unacked messages
after the visibility timeout if it survived, and the recovery sweep
publishes again the jobs left queued if it did not.

Used by the worker process only (worker/main.py), so the broker URL that
beat, Flower and the web front show stays redis://.
"""
from kombu.transport import redis

TRANSPORT = 'worker.broker:Transport'


class Channel(redis.Channel):
    def close(self):
        if self.connection is not None and self.connection.client is None:
            self.do_restore = False  # the transport is detached: no broker to restore to
        super().close()


class Transport(redis.Transport):
    Channel = Channel
