"""The worker killed: a new one takes over, the server keeps answering, builds still run."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from acceptance.stack import (
    QUICK,
    Stack,
    builds_of,
    finished,
    first_build,
    new_stack,
    processes,
    start,
    wait_for,
)

pytestmark = pytest.mark.xdist_group("worker")


def _new_worker(stack: Stack, old_pid: int) -> int:
    def replaced() -> int | None:
        worker = stack.worker()
        if worker is None or worker.pid == old_pid:
            return None
        pool = [p for p in processes() if p.pgid == worker.pid and p.alive]
        return worker.pid if len(pool) > 1 else None

    return int(wait_for(replaced, timeout=60, what="a new worker with its pool"))


def test_a_killed_worker_is_replaced_while_the_server_answers_and_builds_run_after(
    stack: Stack, repo: Callable[..., tuple[Path, Path]]
) -> None:
    old = wait_for(stack.worker, timeout=60, what="the worker")
    wait_for(
        lambda: len([p for p in processes() if p.pgid == old.pid and p.alive]) > 1,
        timeout=60,
        what="the worker's pool",
    )
    answers: list[bool] = []
    done = threading.Event()

    def keep_asking() -> None:
        while not done.is_set():
            answers.append(stack.answers())
            time.sleep(0.2)

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        os.killpg(old.pid, signal.SIGKILL)
        new = _new_worker(stack, old.pid)
    finally:
        done.set()
        asker.join()

    assert new != old.pid
    assert answers and all(answers), "the server stopped answering when the worker died"
    assert not [p for p in processes() if p.pgid == old.pid and p.alive]
    assert "The worker exited (killed by SIGKILL)" in stack.log.read_text()

    bare, _ = repo(QUICK, name="after-kill")
    row = first_build(stack, start(stack, bare))
    assert finished(stack, row["id"], timeout=120)["status"] == "SUCCESS"


def _wake_sockets_are_all_alive(stack: Stack) -> bool:
    """The queue's wake-up sockets (one a worker's pusher) all belong to live processes."""
    folder = stack.data_dir / "run" / "queue-wake"
    pids = [int(p.name.removesuffix(".sock")) for p in folder.glob("*.sock")]
    return bool(pids) and all(Path(f"/proc/{pid}").exists() for pid in pids)


def test_the_worker_started_after_a_kill_is_woken_for_the_next_build(
    repo: Callable[..., tuple[Path, Path]],
) -> None:
    # The queue is read every 120 s here: a build started within seconds was started by the
    # wake-up its task sent, not by a poll.
    slow = new_stack("slow-poll", SD_QUEUE_POLL_SECONDS="120")
    try:
        bare, _ = repo(QUICK, name="woken")
        row = first_build(slow, start(slow, bare))
        assert finished(slow, row["id"], timeout=60)["status"] == "SUCCESS"
        old = wait_for(slow.worker, timeout=60, what="the worker")
        os.killpg(old.pid, signal.SIGKILL)
        _new_worker(slow, old.pid)
        # The new worker's pusher removed the dead one's socket as it bound its own.
        wait_for(
            lambda: _wake_sockets_are_all_alive(slow),
            timeout=30,
            what="only live workers' wake-up sockets",
        )
        began = time.monotonic()
        row = first_build(slow, start(slow, bare))
        assert finished(slow, row["id"], timeout=60)["status"] == "SUCCESS"
        took = time.monotonic() - began
        assert took < 15, f"the build after the kill took {took:.1f} s: was it woken?"
    finally:
        slow.kill()


def test_a_build_waiting_for_a_worker_that_died_runs_on_the_next_one(
    stack: Stack, repo: Callable[..., tuple[Path, Path]]
) -> None:
    worker = wait_for(stack.worker, timeout=60, what="the worker")
    bare, _ = repo(QUICK, name="pending-start")
    # The worker hangs (stopped), its start task waits; then the worker dies.
    os.killpg(worker.pid, signal.SIGSTOP)
    try:
        event = start(stack, bare)
        row = first_build(stack, event)
        time.sleep(2)
        assert builds_of(stack, event["id"])[0]["status"] == "QUEUED"
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        os.killpg(worker.pid, signal.SIGCONT)
    _new_worker(stack, worker.pid)
    assert finished(stack, row["id"], timeout=120)["status"] == "SUCCESS"


# Whether a write transaction can begin now (SQLite: whether anyone holds the write lock).
_WRITE_PROBE = """
from django.db import connection
cursor = connection.cursor()
try:
    if connection.vendor == "sqlite":
        cursor.execute("PRAGMA busy_timeout = 2000")
        cursor.execute("BEGIN IMMEDIATE")
        cursor.execute("ROLLBACK")
    print("free")
except Exception as exc:
    print("held:", exc)
"""


def _freeze_outside_a_write(stack: Stack, pgid: int) -> None:
    """SIGSTOP the worker's process group at a moment none of it holds the database's write
    lock: SQLite has one writer, so a worker frozen inside a write transaction would hold
    every write of the API until it runs again, which is not what this test is about."""
    for _ in range(20):
        os.killpg(pgid, signal.SIGSTOP)
        answer = stack.shell(_WRITE_PROBE)
        if answer == "free":
            return
        os.killpg(pgid, signal.SIGCONT)
        time.sleep(0.2)
    raise AssertionError(f"the worker held the write lock whenever it was stopped: {answer}")


def test_a_build_whose_start_task_was_lost_is_queued_again_and_runs(
    stack: Stack, repo: Callable[..., tuple[Path, Path]]
) -> None:
    worker = wait_for(stack.worker, timeout=60, what="the worker")
    bare, _ = repo(QUICK, name="lost-start")
    _freeze_outside_a_write(stack, worker.pid)
    try:
        event = start(stack, bare)
        row = first_build(stack, event)
        # The start task never reaches a worker: an operator clears the queue while it waits.
        name = f"start-build-{row['id']}"
        cleared = stack.shell(
            "from django_q.models import OrmQ; "
            f"print(sum(1 for q in OrmQ.objects.all() if q.name() == {name!r} and q.delete()))"
        )
        assert cleared != "0", "the start task was not in the queue"
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
    # The reaper finds the build QUEUED and never dispatched, and queues it again.
    assert finished(stack, row["id"], timeout=300)["status"] == "SUCCESS"
