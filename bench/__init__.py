"""Benchmarks of the service against the naive Flask + Celery stack
(../shared/anchors/naive_stack), measured side by side in one run."""
