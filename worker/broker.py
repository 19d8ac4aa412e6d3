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

Two more changes make a dead worker's jobs run again within seconds:

- Every REFRESH_SECONDS the worker sets the delivery time Redis keeps for
  each message it holds (fetched, not acked) to now. A message whose time
  stops moving belonged to a worker that died: the sweep hands it back
  (worker/sweep.py) long before the visibility timeout.
- A message handed back because its pool process died (reject on worker
  lost) goes to the head of the queue, not behind the backlog.

Transport is the worker process's only (worker/main.py), and only on a
redis:// broker (RabbitMQ's transport is kombu's own), so the broker URL that
beat, Flower and the web front show stays redis://; HeadTransport is the
sweep's (in beat). Both build on service.redis_transport, every process's.
"""
import time

from kombu.transport import redis, virtual
from kombu.utils.json import dumps
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from service import redis_transport

TRANSPORT = 'worker.broker:Transport'
HEAD_TRANSPORT = 'worker.broker:HeadTransport'
REFRESH_SECONDS = 1.0


class QoS(redis.QoS):
    def reject(self, delivery_tag, requeue=False):
        if not requeue:
            return super().reject(delivery_tag, requeue=False)
        # Next to be taken (BRPOP takes from the right; kombu puts it leftmost).
        self.restore_by_tag(delivery_tag, leftmost=False)
        virtual.QoS.ack(self, delivery_tag)

    def refresh(self):
        """Mark the messages held as seen now (ZADD XX: acked ones stay gone)."""
        held = list(self._delivered)
        if held:
            with self.channel.conn_or_acquire() as client:
                client.zadd(self.unacked_index_key, dict.fromkeys(held, time.time()), xx=True)


class Channel(redis_transport.Channel):
    QoS = QoS

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


class Transport(redis_transport.Transport):
    Channel = Channel
    _refresh_tref = None

    def register_with_event_loop(self, connection, loop):
        super().register_with_event_loop(connection, loop)
        if self._refresh_tref is not None:  # a reconnection: one timer only
            self._refresh_tref.cancel()
        self._refresh_tref = loop.call_repeatedly(REFRESH_SECONDS, self._refresh_held)

    def _refresh_held(self):
        for channel in list(self.cycle._channels):
            try:
                channel.qos.refresh()
            except (RedisError, AttributeError):
                pass  # the broker is away: the connection's own recovery deals with it


class HeadChannel(redis_transport.Channel):
    """Publishes to the head of the queue (the end BRPOP takes next): the
    sweep's jobs found again run before the backlog, as those of a message
    handed back do."""

    def _put(self, queue, message, **kwargs):
        with self.conn_or_acquire() as client:
            client.rpush(self._q_for_pri(queue, self._get_message_priority(message, reverse=False)),
                         dumps(message))


class HeadTransport(redis_transport.Transport):
    Channel = HeadChannel
