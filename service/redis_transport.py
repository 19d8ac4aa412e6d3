"""kombu's Redis transport, with one client per channel where kombu builds a
new redis-py client for every command it sends (each publish, ack, and
unacked-index update). A client holds nothing but its connection pool, which
it checks a connection out of for each command, so one serves every caller
of the channel; building one (its table of reply callbacks) cost more CPU
than the publish itself.

Every process on a redis:// broker uses it (service.brokers.celery_conf);
the worker's transport builds on it (worker/broker.py)."""
from kombu.transport import redis

TRANSPORT = 'service.redis_transport:Transport'


class Channel(redis.Channel):
    _sync_client = None

    def _create_client(self, asynchronous=False):
        if asynchronous:  # the consumer's BRPOP client: kombu's own, per use
            return super()._create_client(asynchronous=True)
        client = self._sync_client
        if client is None or client.connection_pool is not self.pool:
            client = self._sync_client = super()._create_client()
        return client


class Transport(redis.Transport):
    Channel = Channel
