"""Stopping `make run` the two ways people do: nothing of it, nor of a build, stays running."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from acceptance.stack import (
    SLEEPER,
    Proc,
    Stack,
    first_build,
    new_stack,
    processes,
    start,
    wait_for_line,
)

pytestmark = pytest.mark.xdist_group("shutdown")


def _ours(stack: Stack) -> list[Proc]:
    """Every live process that belongs to this stack, by ancestry or by its data folder."""
    marker = str(stack.data_dir)
    found = (
        {p.pid: p for p in stack.everything()} if stack.make and stack.make.poll() is None else {}
    )
    for proc in processes():
        if proc.alive and marker in proc.argv:
            found[proc.pid] = proc
        else:
            try:
                environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
            except OSError:
                continue
            if proc.alive and f"SD_DATA_DIR={marker}".encode() in environ.split(b"\0"):
                found[proc.pid] = proc
    return list(found.values())


@pytest.mark.parametrize("how", ["Ctrl-C", "SIGTERM to sd_serve"])
def test_a_stop_leaves_no_process_of_the_server_the_worker_or_a_build(
    repo: Callable[..., tuple[Path, Path]], how: str
) -> None:
    stack = new_stack("shutdown", SD_DEMO="false")
    try:
        bare, _ = repo(SLEEPER, name="sleeper")
        row = first_build(stack, start(stack, bare))
        wait_for_line(stack, row["id"], "wait", "started")
        before = _ours(stack)
        assert any("executors.launcher" in p.argv for p in before)
        assert any(p.argv.startswith("sleep 600") for p in before)

        started = time.monotonic()
        if how == "Ctrl-C":
            took = stack.ctrl_c()
        else:
            os.kill(stack.serve().pid, signal.SIGTERM)
            assert stack.make is not None
            stack.make.wait(timeout=30)
            took = time.monotonic() - started
        assert took < 10, f"stopping took {took:.1f} s"
        left = [p for p in _ours(stack) if p.alive]
        assert left == [], [p.argv for p in left]
    finally:
        stack.kill()
