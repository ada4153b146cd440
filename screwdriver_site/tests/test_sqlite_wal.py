"""SQLite's write-ahead log is turned on by a process's first connection, not by each one."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import BASE_DIR

OPEN_TWICE = """
import contextlib, sqlite3, sys, django
django.setup()
from django.db import connection
path = sys.argv[1]

def pragma(text):
    with contextlib.closing(sqlite3.connect(path)) as own:
        return own.execute(text).fetchone()[0]

connection.ensure_connection()
print(pragma("PRAGMA journal_mode"))
connection.close()
pragma("PRAGMA journal_mode=DELETE")
connection.ensure_connection()  # a request's new connection
print(pragma("PRAGMA journal_mode"))
connection.close()
"""


def _open_twice(path: Path, tmp_path: Path) -> list[str]:
    env = {
        **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        "DJANGO_SETTINGS_MODULE": "screwdriver_site.settings",
        "DATABASE_URL": f"sqlite:///{path}",
        "SD_DATA_DIR": str(tmp_path / "data"),
    }
    out = subprocess.run(
        [sys.executable, "-c", OPEN_TWICE, str(path)],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.split()


def test_the_first_connection_of_a_process_turns_on_wal_and_later_ones_leave_the_file_be(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite3"
    sqlite3.connect(path).execute("CREATE TABLE t (x)")
    assert _open_twice(path, tmp_path) == ["wal", "delete"]
    # Another process (a restarted server) turns it on again.
    assert _open_twice(path, tmp_path) == ["wal", "delete"]
