"""Django's SQLite backend, with each process keeping its closed connections to reuse.

Every request the server takes runs in a thread of its own, and Django gives every thread a
connection of its own and closes it when the request ends. A new SQLite connection reads the
whole schema before its first statement and runs three pragmas: about a millisecond and a
half, more while builds write, which is a sixth of the server's time on a status poll. Here a
closed connection goes back to its process's pool instead, and the next thread to connect
takes it: its SQL functions are the connection's own, its pragmas are set again (cheap once
the schema is read; a failed migration may have left foreign keys off), and Django resets
autocommit when it connects.

A connection goes back only when nothing of it is left running: any cursor still open is
closed first (an unfinished statement keeps a read transaction open, and the next request
would read that old snapshot), a transaction still open is rolled back, and a connection
closed inside an atomic block is closed for good. A pooled connection is taken again only by
the process that opened it and only while the file at its path is the one it opened (a test
database deleted and made again under the same name), and none stays open across a fork:
SQLite keeps its locks a process, and a child that inherited an open connection would take
none of its own (django-q2 forks its workers right after closing its connections, expecting
them closed). A test database's connections are closed for good before its file goes.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sqlite3
import threading
import weakref
from typing import Any

from django.db.backends.sqlite3 import base, creation

# Idle connections each process keeps for each database file: the server's threads rarely
# run more requests than this at once. Each holds a file descriptor and its parsed schema;
# its page cache (up to 2 MiB) is let go as it comes back.
KEEP = 4


Key = tuple[int, str, str]  # the process, the file, the connection's options


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> [(connection, (device, inode))], last returned last.
        self._idle: dict[Key, list[tuple[sqlite3.Connection, tuple[int, int]]]] = {}

    def take(self, key: Key) -> sqlite3.Connection | None:
        identity = _identity(key[1])
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                conn, opened = idle.pop()
            if opened == identity:
                return conn
            # The file was replaced since: this connection reads the old one.
            _close(conn)

    def give(self, key: Key, conn: sqlite3.Connection, opened: tuple[int, int]) -> bool:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) >= KEEP:
                return False
            idle.append((conn, opened))
            return True

    def close(self, path: str | None = None) -> None:
        """Close this process's idle connections (to `path`, or all) for good."""
        with self._lock:
            gone = self._take_all(path)
        for conn in gone:
            _close(conn)

    def _take_all(self, path: str | None) -> list[sqlite3.Connection]:
        pid = os.getpid()
        keys = [k for k in self._idle if k[0] == pid and (path is None or k[1] == path)]
        return [conn for key in keys for conn, _ in self._idle.pop(key)]

    def before_fork(self) -> None:
        # Held until the fork is done, so no thread puts a connection back meanwhile.
        self._lock.acquire()
        for conn in self._take_all(None):
            _close(conn)

    def after_fork_in_parent(self) -> None:
        self._lock.release()

    def after_fork_in_child(self) -> None:
        # Only the forking thread goes on in the child: a new lock, and nothing inherited.
        self._lock = threading.Lock()
        self._idle = {}


def _close(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.close()


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


POOL = _Pool()
# At exit the last connection to a file checkpoints its log into it and removes the log.
atexit.register(POOL.close)
os.register_at_fork(
    before=POOL.before_fork,
    after_in_parent=POOL.after_fork_in_parent,
    after_in_child=POOL.after_fork_in_child,
)


class DatabaseCreation(creation.DatabaseCreation):
    """A test database's idle connections are closed before its file is removed, and its log
    files go with it: left behind (by an idle connection, or by a worker process killed with
    the database open) they piled up in the data folder, a pair of some MiB a test run. (The
    stubs leave out the private methods overridden here; hence the ignores.)"""

    def _create_test_db(self, verbosity: int, autoclobber: bool, keepdb: bool = False) -> Any:
        name = str(self._get_test_db_name())  # type: ignore[attr-defined]
        POOL.close(name)
        if not keepdb and not os.path.exists(name):
            _remove_logs(name)  # of an earlier run's database of this name
        return super()._create_test_db(verbosity, autoclobber, keepdb)  # type: ignore[misc]

    def _destroy_test_db(self, test_database_name: str, verbosity: int) -> None:
        POOL.close(str(test_database_name))
        super()._destroy_test_db(test_database_name, verbosity)  # type: ignore[misc]
        if not self.is_in_memory_db(test_database_name):
            _remove_logs(str(test_database_name))


def _remove_logs(name: str) -> None:
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name + suffix)


class DatabaseWrapper(base.DatabaseWrapper):
    creation_class = DatabaseCreation

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cursors: weakref.WeakSet[Any] = weakref.WeakSet()
        # Where the open connection goes back to, and the identity of the file it opened.
        self._opened: tuple[Key, tuple[int, int] | None] | None = None

    def _pooled(self) -> bool:
        return not self.is_in_memory_db()

    def get_new_connection(self, conn_params: dict[str, Any]) -> sqlite3.Connection:
        path = str(conn_params["database"])
        key = (os.getpid(), path, repr(sorted(conn_params.items())))
        self._cursors = weakref.WeakSet()
        conn = POOL.take(key) if self._pooled() else None
        if conn is None:
            conn = super().get_new_connection(conn_params)
        else:
            # As Django sets a new one up (whatever a failed migration left behind).
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA legacy_alter_table = OFF")
            for init_command in self.init_commands:  # type: ignore[attr-defined]
                if init_command := init_command.strip():
                    conn.execute(init_command)
        # Read after connecting: SQLite creates a missing file.
        self._opened = (key, _identity(path))
        return conn

    def create_cursor(self, name: str | None = None) -> Any:
        cursor = super().create_cursor(name)
        self._cursors.add(cursor)
        return cursor

    def _close(self) -> None:
        opened, self._opened = self._opened, None
        conn = self.connection
        if conn is None or opened is None or self.in_atomic_block or not self._kept(conn, *opened):
            super()._close()  # type: ignore[misc]  # the stubs leave Django's private method out

    def _kept(self, conn: sqlite3.Connection, key: Key, identity: tuple[int, int] | None) -> bool:
        """Back to the pool, as the next user must find it; False if it cannot go."""
        if identity is None or key[0] != os.getpid() or not self._pooled():
            return False
        with self.wrap_database_errors:
            for cursor in list(self._cursors):
                cursor.close()
            self._cursors = weakref.WeakSet()
            if conn.in_transaction:
                conn.rollback()
            # Its page cache goes (the schema stays): idle, it would hold up to 2 MiB.
            conn.execute("PRAGMA shrink_memory")
        return POOL.give(key, conn, identity)
