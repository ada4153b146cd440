"""SQLite's write-ahead log, turned on once a process rather than on every connection.

The server, its workers and the launchers' reports write the same SQLite file at once: WAL
lets readers go on while one writes (settings.py). The mode is kept in the database file, so
asking for it again on each new connection (every request opens one) only costs time: the
pragma takes the database's lock, and waits for it while another connection holds it. Here
the first connection each process opens to a file turns it on; `PRAGMA synchronous=NORMAL`,
which is a connection's own, stays in each connection's `init_command`.
"""

from __future__ import annotations

import threading
from typing import Any

_done: set[str] = set()
_lock = threading.Lock()


def turn_on_wal(sender: Any, connection: Any, **kwargs: Any) -> None:
    """`connection_created` receiver: WAL for the first SQLite connection to each file."""
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict["NAME"])
    with _lock:
        if name in _done:
            return
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")
        _done.add(name)
