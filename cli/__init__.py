"""Clients of the running service's HTTP API for manage.py: `enqueue` (JSON
Lines in, batches out) and `jobs` (list, show, retry)."""
