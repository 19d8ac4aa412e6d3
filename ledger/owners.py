"""Who holds a claim: each worker process holds a PostgreSQL session
advisory lock of its own for as long as it lives, on a connection of its
own, and claims jobs under its key (jobs.claimed_by). PostgreSQL releases
the lock the moment that connection ends (the process killed, the machine
gone), so the sweep knows at once which running jobs have lost their worker
(ledger.sweep), without waiting for an age."""
import os
import random
import time

from sqlalchemy import create_engine, pool, text

from pg.exceptions import PgError, translate

# The advisory locks of the ledger's owners are (SPACE, key): two int4, apart
# from any other advisory lock the database may see.
SPACE = 0x6a6f6273  # 'jobs'
TAKE = text('SELECT pg_try_advisory_lock(:space, :key)')
ALIVE = text('SELECT 1')
CHECK_EVERY_SECONDS = 1.0

# The owner keys whose lock is held now, in this database.
HELD = f'''(SELECT objid::bigint FROM pg_locks
            WHERE locktype = 'advisory' AND classid = {SPACE} AND objsubid = 2 AND granted
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))'''


class Owner:
    """This process's owner key, its lock held on a connection of its own to
    the database at `url` (taken again, under a new key, if that connection
    is lost)."""

    def __init__(self, url):
        self._engine = create_engine(url, poolclass=pool.NullPool)
        self._conn = None
        self._pid = None
        self._checked = 0.0
        self.key = None

    def current(self):
        """The key to claim under: its lock is held (checked at most once a
        second). Raises pg's errors when the database cannot be reached."""
        now = time.monotonic()
        if self._conn is not None and self._pid == os.getpid():
            if now - self._checked < CHECK_EVERY_SECONDS:
                return self.key
            try:
                with translate():
                    self._conn.execute(ALIVE)
                    self._conn.commit()
                self._checked = now
                return self.key
            except PgError:
                self._drop()
        self._take()
        self._checked = now
        return self.key

    def _take(self):
        with translate():
            conn = self._engine.connect()
            try:
                while True:
                    key = random.randint(1, 2**31 - 1)
                    taken = conn.execute(TAKE, {'space': SPACE, 'key': key}).scalar()
                    conn.commit()  # the lock is the session's: it outlives the transaction
                    if taken:
                        break
            except BaseException:
                conn.close()
                raise
        self._conn, self._pid, self.key = conn, os.getpid(), key

    def _drop(self):
        try:
            self._conn.invalidate()
        except Exception:
            pass
        self._conn = self.key = None

    def close(self):
        """Let the lock go (a worker process that ends)."""
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = self.key = None
