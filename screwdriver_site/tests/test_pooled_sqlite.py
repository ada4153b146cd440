"""SQLite connections are kept by each process and reused, never in a state the next user
would notice: no read left open, no transaction, no other file, no other process."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from screwdriver_site.pooled_sqlite3.base import DatabaseWrapper


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    path = tmp_path / "pool.sqlite3"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE t (x INTEGER)")
        setup.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(100)])
    return path


def _settings(path: Path) -> dict[str, Any]:
    # Whatever the default database is, these tests open an SQLite file of their own.
    settings = dict(connections["default"].settings_dict)
    settings.update(
        ENGINE="screwdriver_site.pooled_sqlite3",
        NAME=str(path),
        OPTIONS={"transaction_mode": "IMMEDIATE", "timeout": 5},
        TEST={},
    )
    return settings


@pytest.fixture
def wrapper(db_file: Path, django_db_blocker: Any) -> Iterator[DatabaseWrapper]:
    # A database of the test's own, not the test database: pytest-django need not set it up.
    with django_db_blocker.unblock():
        db = DatabaseWrapper(_settings(db_file), "pool-test")
        db.inc_thread_sharing()
        yield db
        db.close()


def _count(db: DatabaseWrapper) -> int:
    with db.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM t")
        return int(cursor.fetchone()[0])


def test_a_closed_connection_is_taken_again_by_the_next_thread(
    wrapper: DatabaseWrapper, db_file: Path
) -> None:
    wrapper.ensure_connection()
    first = wrapper.connection
    wrapper.close()
    assert wrapper.connection is None
    taken: list[Any] = []

    def request() -> None:
        # Each request of the server runs in a thread of its own, with a wrapper of its own.
        other = DatabaseWrapper(_settings(db_file), "pool-test")
        other.ensure_connection()
        taken.append(other.connection)
        assert _count(other) == 100
        other.close()

    thread = threading.Thread(target=request)
    thread.start()
    thread.join()
    assert taken == [first]
    # As Django left it: autocommit, foreign keys on.
    wrapper.ensure_connection()
    assert wrapper.connection is first
    assert wrapper.get_autocommit()
    with wrapper.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys")
        assert cursor.fetchone()[0] == 1


def test_a_read_left_open_does_not_reach_the_next_user(
    wrapper: DatabaseWrapper, db_file: Path
) -> None:
    wrapper.ensure_connection()
    with wrapper.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=WAL")
    # A query read half-way: its statement holds a read of the database as it is now.
    half_read = wrapper.cursor()
    half_read.execute("SELECT x FROM t")
    half_read.fetchone()
    wrapper.close()
    with sqlite3.connect(db_file) as writer:
        writer.execute("INSERT INTO t VALUES (100)")
    wrapper.ensure_connection()
    # Had the old read stayed open, this would still see 100 rows.
    assert _count(wrapper) == 101


def test_a_transaction_left_open_is_rolled_back_first(wrapper: DatabaseWrapper) -> None:
    wrapper.ensure_connection()
    raw = wrapper.connection
    raw.execute("BEGIN")
    raw.execute("DELETE FROM t")
    wrapper.close()
    wrapper.ensure_connection()
    assert wrapper.connection is raw
    assert not raw.in_transaction
    assert _count(wrapper) == 100


def test_a_connection_closed_inside_an_atomic_block_is_closed_for_good(
    wrapper: DatabaseWrapper,
) -> None:
    wrapper.ensure_connection()
    raw = wrapper.connection
    wrapper.set_autocommit(False)
    wrapper.in_atomic_block = True  # as transaction.atomic leaves it
    wrapper.close()
    with pytest.raises(sqlite3.ProgrammingError):
        raw.execute("SELECT 1")
    wrapper.in_atomic_block = wrapper.closed_in_transaction = wrapper.needs_rollback = False
    wrapper.connection = None
    wrapper.ensure_connection()
    assert wrapper.connection is not raw
    assert _count(wrapper) == 100


def test_a_database_made_again_under_the_same_name_gets_a_new_connection(
    wrapper: DatabaseWrapper, db_file: Path
) -> None:
    wrapper.ensure_connection()
    old = wrapper.connection
    wrapper.close()
    # A test database is deleted and made again under its name between runs.
    db_file.unlink()
    with sqlite3.connect(db_file) as setup:
        setup.execute("CREATE TABLE t (x INTEGER)")
    wrapper.ensure_connection()
    assert wrapper.connection is not old
    assert _count(wrapper) == 0


def _locks_of(pid: int) -> list[str]:
    """The POSIX locks `pid` holds (SQLite's are all fcntl locks)."""
    with open("/proc/locks") as table:
        return [line for line in table if line.split()[4] == str(pid)]


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux's /proc/locks")
def test_no_connection_stays_open_across_a_fork(wrapper: DatabaseWrapper) -> None:
    wrapper.ensure_connection()
    with wrapper.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=WAL")
    parents = wrapper.connection
    wrapper.close()  # idle in the pool, as django-q2 leaves its connections before forking
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            wrapper.ensure_connection()
            ok = wrapper.connection is not parents and _count(wrapper) == 100
            # A connection in WAL mode holds a read lock on the -shm file while it is open.
            # SQLite keeps its locks a process: had the parent's connection come across the
            # fork open, this child would believe it holds them and take none.
            held = bool(_locks_of(os.getpid()))
            os.write(write, b"locked" if ok and held else b"ok-no-locks" if ok else b"bad")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"locked"
    # The parent's idle connection was closed for good before the fork.
    with pytest.raises(sqlite3.ProgrammingError):
        parents.execute("SELECT 1")


def test_foreign_keys_are_on_again_for_the_next_user(wrapper: DatabaseWrapper) -> None:
    wrapper.ensure_connection()
    raw = wrapper.connection
    with wrapper.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys = OFF")  # as a failed migration may leave it
    wrapper.close()
    wrapper.ensure_connection()
    assert wrapper.connection is raw
    with wrapper.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys")
        assert cursor.fetchone()[0] == 1


def test_a_test_database_leaves_no_log_files_behind(
    wrapper: DatabaseWrapper, db_file: Path
) -> None:
    wrapper.ensure_connection()
    with wrapper.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("INSERT INTO t VALUES (1)")
    wrapper.close()  # idle in the pool, its -wal and -shm files open
    assert Path(f"{db_file}-wal").exists()
    wrapper.creation._destroy_test_db(str(db_file), 0)  # type: ignore[attr-defined]
    assert not db_file.exists()
    assert not Path(f"{db_file}-wal").exists() and not Path(f"{db_file}-shm").exists()


def test_a_test_databases_log_files_go_with_it_whoever_still_holds_them(
    wrapper: DatabaseWrapper, db_file: Path
) -> None:
    # Another process's connection (a worker killed with the database open) keeps the log.
    other = sqlite3.connect(db_file)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("INSERT INTO t VALUES (1)")
    other.commit()
    assert Path(f"{db_file}-wal").exists()
    wrapper.creation._destroy_test_db(str(db_file), 0)  # type: ignore[attr-defined]
    other.close()
    assert sorted(p.name for p in db_file.parent.iterdir()) == []
