"""A build's launcher killed, and the API stopped for a minute during a build."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from acceptance.stack import (
    SLEEPER,
    Stack,
    finished,
    first_build,
    log_lines,
    start,
    wait_for_line,
)

pytestmark = pytest.mark.xdist_group("builds")

LINES = 400
COUNTER = f"""
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - count: i=1; while [ $i -le {LINES} ]; do echo "line $i"; i=$((i+1)); sleep 0.05; done
      - after: echo "done counting"
"""


def test_a_build_whose_launcher_was_killed_ends_as_lost_within_two_minutes(
    stack: Stack, repo: Callable[..., tuple[Path, Path]]
) -> None:
    bare, _ = repo(SLEEPER, name="killed")
    row = first_build(stack, start(stack, bare))
    wait_for_line(stack, row["id"], "wait", "started")
    launcher = stack.launcher_of(row["id"])
    assert launcher is not None

    # The launcher and every process it started, as a crash or the OOM killer would.
    doomed = [launcher.pid] + [p.pid for p in stack.everything() if p.ppid == launcher.pid]
    doomed += [p.pid for p in stack.everything() if p.pgid in doomed]
    os.killpg(launcher.pgid, signal.SIGKILL)
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    ended = finished(stack, row["id"], timeout=150)
    took = time.monotonic() - killed_at
    assert ended["status"] == "FAILURE"
    assert "The build was lost" in ended["statusMessage"]
    # The lease (30 s by default) plus one reaper period (a minute) and the scheduler's beat.
    assert took <= 120, f"the reaper took {took:.0f} s"


def test_a_build_that_finishes_while_the_api_is_stopped_for_a_minute_loses_nothing(
    stack: Stack, repo: Callable[..., tuple[Path, Path]]
) -> None:
    bare, _ = repo(COUNTER, name="outage")
    row = first_build(stack, start(stack, bare))
    wait_for_line(stack, row["id"], "count", "line 1")
    web = stack.web()
    assert web is not None

    os.kill(web.pid, signal.SIGSTOP)
    try:
        time.sleep(60)  # the step prints and ends, the next one runs, the build ends
        launcher = stack.launcher_of(row["id"])
        assert launcher is not None, "the launcher gave up while the API was away"
    finally:
        os.kill(web.pid, signal.SIGCONT)

    ended = finished(stack, row["id"], timeout=180)
    assert ended["status"] == "SUCCESS", ended["statusMessage"]
    assert log_lines(stack, row["id"], "count") == [f"line {i}" for i in range(1, LINES + 1)]
    assert log_lines(stack, row["id"], "after") == ["done counting"]
    steps = {step["name"]: step for step in ended["steps"]}
    assert steps["count"]["code"] == 0 and steps["after"]["code"] == 0
