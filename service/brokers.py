"""The two brokers the service runs on, chosen by CELERY_BROKER_URL's scheme:
Redis (redis://, rediss://, redis+socket://) and RabbitMQ (amqp://, amqps://,
pyamqp://).

Everything that differs between them lives here: the Celery settings of
each, the options of a publish, and the probe that health and metrics use.

RabbitMQ: the jobs queue is a durable quorum queue (replicated on a cluster,
kept on disk) and every publish waits for the broker's confirm, so a 202
means the message is stored by the broker as the job row is by PostgreSQL.
What quorum queues change:
- Priorities: a quorum queue refuses x-max-priority (RabbitMQ 3; RabbitMQ 4
  knows two levels only). The service sends none.
- Redeliveries are counted: past DELIVERY_LIMIT deliveries (a message whose
  job kills every worker that takes it) RabbitMQ drops the message instead of
  redelivering it forever; its job stays queued or running in the ledger and
  the recovery sweep publishes it again. RabbitMQ 4 limits at 20 unless told:
  the queue says it, so the limit is the same on every version.
- Delayed messages (a retry's countdown) wait in RabbitMQ, in Celery's
  "native delayed delivery" queues (celery_delayed_*, quorum too), which
  need the topic exchange set here; a worker never holds them (Redis: the
  worker holds them, unacked, within the visibility timeout).
- No visibility timeout: RabbitMQ redelivers a message when the connection
  of the consumer that holds it closes (the worker died), at once.
"""
import math
import threading

from kombu import Connection, Exchange, Queue

from service import redis_transport
from service.errors import ConfigError

REDIS, RABBITMQ = 'redis', 'rabbitmq'
SCHEMES = {'redis': REDIS, 'rediss': REDIS, 'redis+socket': REDIS,
           'amqp': RABBITMQ, 'amqps': RABBITMQ, 'pyamqp': RABBITMQ}
QUEUE = 'jobs'
# Deliveries of one message before RabbitMQ drops it (the sweep takes over).
# Part of the queue's arguments: changing it means deleting the queue first
# (RabbitMQ refuses to declare a queue again with other arguments).
DELIVERY_LIMIT = 50


def kind(url):
    """REDIS or RABBITMQ, by the URL's scheme; ConfigError for another."""
    scheme = str(url).split('://', 1)[0].lower() if '://' in str(url) else ''
    try:
        return SCHEMES[scheme]
    except KeyError:
        raise ConfigError('CELERY_BROKER_URL must be a redis:// or amqp:// URL, not '
                          f'{scheme or "no"} scheme') from None


def jobs_queue():
    """The RabbitMQ jobs queue: durable, quorum, on a topic exchange (Celery's
    delayed delivery binds it by a pattern of its routing key)."""
    return Queue(QUEUE, Exchange(QUEUE, type='topic', durable=True), routing_key=QUEUE,
                 durable=True, queue_arguments={'x-queue-type': 'quorum',
                                                'x-delivery-limit': DELIVERY_LIMIT})


def celery_conf(config):
    """The Celery settings of the broker CELERY_BROKER_URL names."""
    timeout = config['CELERY_PUBLISH_TIMEOUT']
    if kind(config['CELERY_BROKER_URL']) == REDIS:
        if config['WORKER_RETRY_MAX_SECONDS'] >= config['CELERY_VISIBILITY_TIMEOUT']:
            # Redis would deliver a delayed retry a second time, early.
            raise ConfigError('WORKER_RETRY_MAX_SECONDS must stay below CELERY_VISIBILITY_TIMEOUT')
        return {'broker_transport': redis_transport.TRANSPORT, 'broker_transport_options': {
            # Longer than any retry countdown, so a delayed retry is never redelivered early.
            'visibility_timeout': config['CELERY_VISIBILITY_TIMEOUT'],
            'socket_connect_timeout': timeout,
            # A broker that stops answering (a network cut, not a refused
            # connection) fails a publish within this, rather than never.
            'socket_timeout': timeout,
        }}
    return {
        'broker_transport_options': {'confirm_publish': True},
        'broker_connection_timeout': timeout,
        # A consumer on a half-open connection (a network cut) notices within
        # about two heartbeats. The web's idle pooled connections are closed by
        # RabbitMQ meanwhile: their next publish fails unconfirmed and is retried
        # once on a new connection (task_publish_retry_policy).
        'broker_heartbeat': 30,
        'task_queues': (jobs_queue(),),
        'task_default_exchange': QUEUE,
        'task_default_exchange_type': 'topic',
        'task_default_routing_key': QUEUE,
        'task_default_queue_type': 'quorum',
        'broker_native_delayed_delivery_queue_type': 'quorum',
    }


def publish_options(config):
    """Options of each publish: on RabbitMQ, the longest wait for the socket
    and the broker's confirm (then the web answers 503)."""
    if kind(config['CELERY_BROKER_URL']) == RABBITMQ:
        timeout = config['CELERY_PUBLISH_TIMEOUT']
        return {'timeout': timeout, 'confirm_timeout': timeout}
    return {}


def countdown(config, seconds):
    """A retry's delay as the broker can keep it: RabbitMQ's delayed delivery
    counts whole seconds, at least one (Celery refuses a message whose
    countdown rounds down to 0, and it would be lost to the sweep)."""
    if kind(config['CELERY_BROKER_URL']) == RABBITMQ:
        return max(1, math.ceil(seconds))
    return seconds


def queue_depth(connection, queue=QUEUE):
    """Messages waiting in `queue` (not those a consumer holds), by a passive
    declare on a kombu connection: LLEN on Redis, the queue's count on RabbitMQ.
    A queue not declared yet holds none."""
    channel = connection.channel()
    try:
        return channel.queue_declare(queue, passive=True).message_count
    except connection.channel_errors as error:
        if getattr(error, 'code', None) == 404 or 'NOT_FOUND' in str(error):
            return 0  # RabbitMQ closed the channel: it is not reused
        raise
    finally:
        try:
            channel.close()
        except Exception:  # noqa: BLE001 (a channel RabbitMQ closed already)
            pass


class BrokerUnavailable(Exception):
    """The broker did not answer (refused, timed out, connection lost)."""


class Probe:
    """This process's own connection to the broker for /health and /metrics,
    each call failing within about CELERY_PUBLISH_TIMEOUT when the broker
    does not answer (a network cut included). Thread- and greenlet-safe."""

    def __init__(self, config):
        self.url = config['CELERY_BROKER_URL']
        self.kind = kind(self.url)
        self.timeout = config['CELERY_PUBLISH_TIMEOUT']
        self._lock = threading.Lock()
        self._connection = None

    def _connect(self):
        if self.kind == REDIS:
            options = {'socket_connect_timeout': self.timeout, 'socket_timeout': self.timeout}
        else:
            options = {'read_timeout': self.timeout, 'write_timeout': self.timeout}
        return Connection(self.url, connect_timeout=self.timeout, transport_options=options)

    def depth(self, queue=QUEUE):
        """The queue's depth; raises BrokerUnavailable when the broker does not answer."""
        with self._lock:
            if self._connection is None:
                self._connection = self._connect()
            connection = self._connection
            try:
                return queue_depth(connection, queue)
            except (OSError, *connection.connection_errors, *connection.channel_errors) as error:
                self._connection = None
                try:
                    connection.collect()  # no close handshake with a broker gone
                except Exception:  # noqa: BLE001
                    pass
                raise BrokerUnavailable(f'{type(error).__name__}: {error}') from error

    def ok(self):
        """True when the broker answered."""
        try:
            self.depth()
            return True
        except BrokerUnavailable:
            return False


def probe(app):
    """The app's Probe, made once."""
    found = app.extensions.get('broker_probe')
    if found is None:
        found = app.extensions['broker_probe'] = Probe(app.config)
    return found


def empty(url):
    """No message of an earlier run left (tests, bench): the Redis database
    flushed, or the RabbitMQ jobs queue deleted (the service declares it again)."""
    if kind(url) == REDIS:
        import redis
        redis.Redis.from_url(url).flushdb()
        return
    with Connection(url, connect_timeout=10) as connection:
        channel = connection.channel()
        try:
            channel.queue_delete(QUEUE)
        finally:
            channel.close()
