"""The `enqueue` and `jobs` subcommands of manage.py: their arguments and
what they do. Both talk to a running service over HTTP.

Stdlib imports only at the top: manage.py builds its parser (and answers
--help) with the system python, before it enters the virtual environment."""
import json
import sys


def add_service_arguments(parser):
    parser.add_argument('--url', help='the service (default: http://127.0.0.1:$PORT, '
                                      'PORT from the environment or .env, else 8000)')
    parser.add_argument('--token', help='the bearer token (default: the first of '
                                        'FLASK_API_TOKENS, from the environment or .env)')
    parser.add_argument('--retries', type=int, default=5, metavar='N',
                        help='times a request surely not recorded (503, no connection) is '
                             'sent again, with backoff (default: 5)')


def add_enqueue_arguments(parser):
    parser.add_argument('file', metavar='FILE',
                        help='a JSON Lines file, one {"kind", "payload"[, "idempotency_key"]'
                             '[, "run_at" (RFC 3339) or "delay" (seconds)]} per line; - for '
                             'standard input')
    parser.add_argument('--batch', type=int, default=100, metavar='N',
                        help='most lines of one kind per POST /jobs/<kind>/batch (default: 100)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    add_service_arguments(parser)


STATUSES = ['scheduled', 'queued', 'running', 'succeeded', 'failed', 'cancelled']


def _add_filters(parser, statuses, default):
    parser.add_argument('--status', action='append', choices=statuses,
                        help=f'only jobs of this status (repeat for several; default: {default})')
    parser.add_argument('--kind', help='only jobs of this kind, e.g. user.credit')
    parser.add_argument('--before', metavar='TIME',
                        help='only jobs recorded before this RFC 3339 time, e.g. 2030-01-31T12:00:00Z')


def add_jobs_arguments(parser):
    actions = parser.add_subparsers(dest='action', required=True, metavar='ACTION')
    listing = actions.add_parser('list', help='the jobs, newest first (GET /jobs)',
                                 description='Print the jobs, newest first, as JSON.')
    listing.add_argument('--status', choices=STATUSES)
    listing.add_argument('--kind', help='only jobs of this kind, e.g. genre.create')
    listing.add_argument('--limit', type=int, help='at most N jobs (1-1000, default 50)')
    listing.add_argument('--cursor', help="the next page: the previous answer's `next`")
    add_service_arguments(listing)
    show = actions.add_parser('show', help='one job (GET /jobs/ID)',
                              description='Print one job as JSON.')
    show.add_argument('id', metavar='ID', type=int, help='the job id')
    add_service_arguments(show)
    retry = actions.add_parser(
        'retry', help='queue a failed or cancelled job again (POST /jobs/ID/retry), or every '
                      'one matching the filters (POST /jobs/retry)',
        description='Queue a failed or cancelled job again, or (without ID) up to --limit jobs '
                    'matching the filters; print the answer as JSON (bulk: the count).')
    retry.add_argument('id', metavar='ID', type=int, nargs='?', help='the job id')
    _add_filters(retry, ['failed', 'cancelled'], 'failed')
    retry.add_argument('--limit', type=int, help='at most N jobs (1-10000, the default)')
    add_service_arguments(retry)
    cancel = actions.add_parser(
        'cancel', help='cancel a scheduled or queued job (POST /jobs/ID/cancel), or every one '
                       'matching the filters (POST /jobs/cancel)',
        description='Cancel a scheduled or queued job (it is never applied), or (without ID) '
                    'every one matching the filters; print the answer as JSON (bulk: the count).')
    cancel.add_argument('id', metavar='ID', type=int, nargs='?', help='the job id')
    _add_filters(cancel, ['scheduled', 'queued'], 'both')
    add_service_arguments(cancel)


def _client(args, env_file):
    from cli.client import Client, defaults
    url, token = defaults(env_file)
    return Client(args.url or url, args.token or token, retries=max(0, args.retries))


def enqueue(args, env_file):
    """Exit code: 0 when every line was accepted, 1 when some were refused,
    2 when some could not be sent (service unreachable, token refused)."""
    from cli.enqueue import count_lines
    from cli.enqueue import enqueue as send
    client = _client(args, env_file)
    progress = False if args.no_progress else None
    if args.file == '-':
        summary = send(sys.stdin.buffer, client, args.batch, progress=progress)
    else:
        try:
            total = count_lines(args.file)
            with open(args.file, 'rb') as stream:
                summary = send(stream, client, args.batch, total=total, progress=progress)
        except OSError as error:
            print(f'enqueue: cannot read {args.file}: {error.strerror}', file=sys.stderr)
            return 2
    print(summary.report())
    return summary.exit_code


def jobs(args, env_file):
    """Print the API's answer as JSON; a refusal goes to stderr, exit code 1."""
    from cli.client import Refused, ServiceError
    client = _client(args, env_file)
    try:
        if args.action == 'list':
            answer = client.list_jobs(args.status, args.kind, args.limit, args.cursor)
        elif args.action == 'show':
            answer = client.get_job(args.id)
        elif args.id is not None:
            if args.status or args.kind or args.before or getattr(args, 'limit', None):
                print(f'jobs {args.action}: give a job ID or filters, not both', file=sys.stderr)
                return 2
            answer = (client.retry_job if args.action == 'retry' else client.cancel_job)(args.id)
        else:
            if not (args.status or args.kind or args.before):
                print(f'jobs {args.action}: give a job ID, or filters (--status, --kind, '
                      '--before)', file=sys.stderr)
                return 2
            filters = {'status': ','.join(args.status) if args.status else None,
                       'kind': args.kind, 'created_before': args.before}
            if args.action == 'retry':
                answer = client.retry_jobs(**filters, limit=args.limit)
            else:
                answer = client.cancel_jobs(**filters)
    except Refused as refused:
        print(json.dumps(refused.body, indent=2), file=sys.stderr)
        return 1
    except ServiceError as error:
        print(f'jobs {args.action}: {error}', file=sys.stderr)
        return 2
    print(json.dumps(answer, indent=2))
    return 0
