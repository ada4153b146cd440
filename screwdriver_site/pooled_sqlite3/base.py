"""Django's SQLite backend, with each process keeping its closed connections to reuse.

Every request the server takes runs in a thread of its own, and Django gives every thread a
connection of its own and closes it when the request ends. A new SQLite connection reads the
whole schema before its first statement and runs three pragmas: about a millisecond and a
half, more while builds write, which is a sixth of the server's time on a status poll. Here a
closed connection goes back to its process's pool instead, and the next thread to connect
takes it, as it was: its pragmas and SQL functions are the connection's own, Django resets
autocommit when it connects.

A connection goes back only when nothing of it is left running: any cursor still open is
closed first (an unfinished statement keeps a read transaction open, and the next request
would read that old snapshot), a transaction still open is rolled back, and a connection
closed inside an atomic block is closed for good. A pooled connection is taken again only by
the process that opened it (a forked worker opens its own) and only while the file at its
path is the one it opened (a test database deleted and made again under the same name).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sqlite3
import threading
import weakref
from typing import Any

from django.db.backends.sqlite3 import base

# Idle connections each process keeps for each database file: the server's threads rarely
# run more requests than this at once, and each connection holds a file descriptor and its
# page cache (up to 2 MiB, SQLite's default), so the server's memory stays within 8 MiB of
# what it was without them.
KEEP = 4


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (pid, path) -> [(connection, (device, inode))], last returned last.
        self._idle: dict[tuple[int, str], list[tuple[sqlite3.Connection, tuple[int, int]]]] = {}

    def take(self, path: str) -> sqlite3.Connection | None:
        identity = _identity(path)
        key = (os.getpid(), path)
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                conn, opened = idle.pop()
            if opened == identity:
                return conn
            # The file was replaced since: this connection reads the old one.
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def give(self, path: str, conn: sqlite3.Connection, opened: tuple[int, int]) -> bool:
        with self._lock:
            idle = self._idle.setdefault((os.getpid(), path), [])
            if len(idle) >= KEEP:
                return False
            idle.append((conn, opened))
            return True

    def close_all(self) -> None:
        """At exit: the last connection to close checkpoints the log into the file."""
        with self._lock:
            mine = [
                conn
                for (pid, _), idle in self._idle.items()
                if pid == os.getpid()
                for conn, _ in idle
            ]
            self._idle.clear()
        for conn in mine:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


POOL = _Pool()
atexit.register(POOL.close_all)


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cursors: weakref.WeakSet[Any] = weakref.WeakSet()
        # Where the open connection goes back to: its file, the file's identity, the process.
        self._opened: tuple[str, tuple[int, int] | None, int] | None = None

    def _pooled(self) -> bool:
        return not self.is_in_memory_db()

    def get_new_connection(self, conn_params: dict[str, Any]) -> sqlite3.Connection:
        path = str(conn_params["database"])
        self._cursors = weakref.WeakSet()
        conn = POOL.take(path) if self._pooled() else None
        if conn is None:
            conn = super().get_new_connection(conn_params)
        # Read after connecting: SQLite creates a missing file.
        self._opened = (path, _identity(path), os.getpid())
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

    def _kept(
        self, conn: sqlite3.Connection, path: str, identity: tuple[int, int] | None, pid: int
    ) -> bool:
        """Back to the pool, as the next user must find it; False if it cannot go."""
        if identity is None or pid != os.getpid() or not self._pooled():
            return False
        with self.wrap_database_errors:
            for cursor in list(self._cursors):
                cursor.close()
            self._cursors = weakref.WeakSet()
            if conn.in_transaction:
                conn.rollback()
        return POOL.give(path, conn, identity)
