"""The worker's Redis transport: kombu's, except that losing the broker
connection no longer kills the worker.

On a lost connection, Celery's consumer closes the broken connection after
kombu has already detached the transport from it (Connection.collect). When
closing a channel failed midway the first time (Redis gone while a BRPOP was
pending), the channel is closed again then, still holding the messages it
had prefetched, and tries to give them back to Redis through the detached
transport: AttributeError ('NoneType' object has no attribute 'hostname'),
which Celery treats as unrecoverable. The worker process exits and nothing
consumes the queue any more. Acking a message on such a channel fails the
same way, and is refused here as a connection error instead.

There is no broker left to give those messages back to at that point, so
the channel skips it. Nothing is lost: Redis redelivers unacked messages
after the visibility timeout if it survived, and the recovery sweep
publishes again the jobs left queued if it did not.

Used by the worker process only (worker/main.py), and only on a redis://
broker (RabbitMQ's transport is kombu's own), so the broker URL that beat,
Flower and the web front show stays redis://.
"""
from kombu.transport import redis
from redis.exceptions import ConnectionError as RedisConnectionError

TRANSPORT = 'worker.broker:Transport'


class Channel(redis.Channel):
    def close(self):
        if self.connection is not None and self.connection.client is None:
            self.do_restore = False  # the transport is detached: no broker to restore to
        super().close()

    # A task that ends after the connection was lost acks (or rejects) through a
    # channel without a connection: AttributeError, unrecoverable for Celery. As
    # a connection error it is logged and the worker goes on; the message stays
    # unacked, so Redis delivers it again (the ledger makes that harmless).
    def basic_ack(self, delivery_tag, multiple=False):
        self._connected()
        return super().basic_ack(delivery_tag, multiple=multiple)

    def basic_reject(self, delivery_tag, requeue=False):
        self._connected()
        return super().basic_reject(delivery_tag, requeue=requeue)

    def _connected(self):
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError('the broker connection was lost')


class Transport(redis.Transport):
    Channel = Channel
