"""Collecting a process's exited children: orphans are reaped, a Popen's child is left to it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from executors.launcher import process


def _exited(pid: int) -> bool:
    with open(f"/proc/{pid}/stat", "rb") as stat:
        return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"


def test_an_exited_child_nobody_waits_for_is_reaped_and_a_popens_is_left_to_its_poll() -> None:
    orphan = os.fork()
    if orphan == 0:
        os._exit(0)
    owned = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    deadline = time.monotonic() + 10
    while not (_exited(orphan) and _exited(owned.pid)) and time.monotonic() < deadline:
        time.sleep(0.01)

    process.reap_children(keep=[owned.pid])

    assert not os.path.exists(f"/proc/{orphan}")
    assert owned.poll() == 3
