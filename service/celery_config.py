"""Celery's settings, derived from the one app config (service/settings.py):
the service's choices, then any Celery setting given as CELERY_<NAME>
(service/celery_settings.py), unless it undoes an exactly-once choice."""
from service import brokers, celery_settings


def celery_config(config):
    """The Celery settings for at-least-once delivery of short JSON jobs.

    The broker's own settings (Redis or RabbitMQ, by the URL) come from
    service/brokers.py. Raises ConfigError for a broker URL of neither, or
    (Redis) when a retry could wait longer than the visibility timeout (Redis
    would deliver the delayed message a second time early), and
    UnsafeCeleryConfigError (a ConfigError) naming a CELERY_<NAME> that would
    undo acks late, JSON only and the like."""
    broker = brokers.celery_conf(config)
    given = celery_settings.overrides(config)
    celery_settings.check_safe(given)
    conf = {
        'broker_url': config['CELERY_BROKER_URL'],
        'broker_connection_retry_on_startup': True,
        'task_serializer': 'json',
        'result_serializer': 'json',
        'accept_content': ['json'],
        'event_serializer': 'json',
        'task_ignore_result': True,  # the job ledger holds the results
        'task_acks_late': True,
        'task_reject_on_worker_lost': True,
        'worker_prefetch_multiplier': config['CELERY_PREFETCH_MULTIPLIER'],
        'task_default_queue': 'jobs',
        # No task-sent event: one Redis round trip less per POST. Task events cost
        # the worker three Redis publishes per message: they are off until Flower,
        # when it runs, turns them on (its enable_events, on by default).
        'task_send_sent_event': False,
        'worker_send_task_events': False,
        'task_publish_retry_policy': {
            'max_retries': 1, 'interval_start': 0, 'interval_step': 0.2, 'interval_max': 0.2,
        },
        'worker_hijack_root_logger': False,
        **broker,
    }
    # Transport options given are merged under the service's own.
    transport = {**(given.pop('broker_transport_options', None) or {}),
                 **conf['broker_transport_options']}
    conf.update(given)
    conf['broker_transport_options'] = transport
    return conf
