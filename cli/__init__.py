"""manage.py's commands: clients of the running service's HTTP API
(`enqueue`: JSON Lines in, batches out; `jobs`: list, show, retry), and the
Procfile's processes started one by one (processes.py: the benchmark and the
end-to-end tests)."""
