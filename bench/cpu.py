"""CPU time of a running stack, read from /proc: what its jobs cost.

A `CpuMeter` sums utime + stime of every process of a stack over a window:
the process trees of its commands (pool children and gunicorn workers
included), the PostgreSQL backends whose client is one of those processes,
and given pids (the Redis server). Processes come and go (pools grow,
children are replaced), so a thread samples them all every `interval`; a
process seen first inside the window counts from zero, one that exits counts
up to its last sample (up to one interval of its time is lost).

A backend is told apart from the bench's own and other clients' by its
client's TCP port (pg_stat_activity.client_port), found among the sockets
(/proc/net/tcp) the stack's processes hold open: no naming convention asked
of the stack.
"""
import os
import threading
import time

import psycopg

TICK = os.sysconf('SC_CLK_TCK')


def stat(pid):
    """(ppid, start time, CPU ticks, command name) of a process, or None once it is gone."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            line = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may itself hold spaces or ')'.
    name = line[line.index('(') + 1:line.rindex(')')]
    fields = line[line.rindex(')') + 2:].split()
    return int(fields[1]), int(fields[19]), int(fields[11]) + int(fields[12]), name


def processes():
    """{pid: (ppid, start, ticks, name)} of every process now."""
    table = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            found = stat(int(entry))
            if found:
                table[int(entry)] = found
    return table


def tree(root, table):
    """The pids of `root` and all its descendants in `table`."""
    children = {}
    for pid, (ppid, *_) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in table and pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def _client_sockets(server_port):
    """{client port: socket inode} of the TCP connections to `server_port` on this machine."""
    found = {}
    for name in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, remote, inode = fields[1], fields[2], fields[9]
                    if int(remote.rsplit(':', 1)[1], 16) == server_port:
                        found[int(local.rsplit(':', 1)[1], 16)] = inode
        except FileNotFoundError:
            pass
    return found


def _open_sockets(pid):
    """The socket inodes a process holds open (its own processes only are readable)."""
    inodes = set()
    try:
        for fd in os.listdir(f'/proc/{pid}/fd'):
            try:
                link = os.readlink(f'/proc/{pid}/fd/{fd}')
            except OSError:
                continue
            if link.startswith('socket:['):
                inodes.add(link[8:-1])
    except OSError:
        pass
    return inodes


class CpuMeter:
    """The CPU seconds of a stack's processes between `start()` and `stop()`,
    by group. `groups(table)` maps the pids to measure to a group name
    ('web', 'worker', 'redis', ...); their PostgreSQL backends on `db_url`'s
    database are measured as group 'postgres'."""

    def __init__(self, groups, db_url=None, interval=0.2):
        self._groups = groups
        self._interval = interval
        self._db = None
        if db_url:
            self._db = psycopg.connect(db_url, autocommit=True)
            self._db_port = self._db.info.port
        self._backends = {}  # backend pid -> measured or not (decided once)
        self._base = {}
        self._last = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = None

    def _backend_pids(self, members):
        """The pids of the backends on our database whose client is one of `members`."""
        rows = self._db.execute(
            'SELECT pid, client_port FROM pg_stat_activity '
            'WHERE datname = current_database() AND pid <> pg_backend_pid()').fetchall()
        unknown = [(pid, port) for pid, port in rows if pid not in self._backends]
        if unknown:
            sockets = _client_sockets(self._db_port)
            held = set().union(*(_open_sockets(pid) for pid in members)) if members else set()
            for pid, port in unknown:
                inode = sockets.get(port)
                if inode is None:
                    continue  # not seen yet (or over a Unix socket): asked again next time
                self._backends[pid] = inode in held
        return [pid for pid, _ in rows if self._backends.get(pid)]

    def sample(self):
        """{(pid, start): (group, ticks)} of the measured processes now."""
        table = processes()
        members = self._groups(table)
        found = {(pid, table[pid][1]): (group, table[pid][2]) for pid, group in members.items()}
        if self._db is not None:
            for pid in self._backend_pids(members):
                now = stat(pid)
                if now:
                    found[(pid, now[1])] = ('postgres', now[2])
        return found

    def _record(self, found):
        with self._lock:
            self._last.update(found)

    def start(self):
        """Open the window (now) and sample in the background until stop()."""
        self._base = self.sample()
        self._last = dict(self._base)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stopping.wait(self._interval):
            self._record(self.sample())

    def stop(self):
        """Close the window; return {group: CPU seconds} within it ({} if
        it never opened)."""
        if self._thread is None:
            return {}
        self._stopping.set()
        self._thread.join()
        self._record(self.sample())
        return self.totals()

    def totals(self):
        by_group = {}
        with self._lock:
            for key, (group, ticks) in self._last.items():
                spent = ticks - self._base.get(key, (group, 0))[1]
                by_group[group] = by_group.get(group, 0) + spent / TICK
        return by_group

    def close(self):
        if self._db is not None:
            self._db.close()


def per_thousand(by_group, jobs):
    """CPU seconds per 1,000 jobs: the total and each group's, rounded."""
    if not jobs:
        return None, {}
    scale = 1000 / jobs
    groups = {group: round(seconds * scale, 3) for group, seconds in sorted(by_group.items())}
    return round(sum(by_group.values()) * scale, 3), groups


def wait_for(predicate, timeout, interval=0.02):
    """Poll `predicate()` until true (returns True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
