"""A real build whose launcher dies is queued again when its job allows infrastructure retries,
and runs to the end; a build whose step failed is never retried."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from builds.dispatch import reap
from builds.models import Build, BuildStatus, Step
from builds.tests.step_logs import step_log
from conftest import wait_until
from pipelines.services import Creator, create_pipeline, start_event

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ALICE = Creator("Alice", "alice")


@pytest.fixture
def stack_env() -> dict[str, str]:
    # The step leaves a mark on this machine for its second attempt to find: no sandbox here.
    return {"SD_LOCAL_SANDBOX": "none"}


def _yaml(marker: Path) -> str:
    return f"""
jobs:
  main:
    image: buildpack-deps
    annotations:
      screwdriver.cd/retries: 1
    requires: [~commit]
    steps:
      - work: |
          if [ -e {marker} ]; then echo "second attempt"; exit 0; fi
          touch {marker}; echo first; sleep 600
  broken:
    image: buildpack-deps
    annotations:
      screwdriver.cd/retries: 2
    requires: [~commit]
    steps:
      - fail: exit 3
"""


def _kill_launcher(build: Build) -> None:
    pid = build.executor_state["pid"]
    doomed = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if f"SD_ROOT_DIR={build.executor_state['workspace']}".encode() in (
                    (entry / "environ").read_bytes().split(b"\0")
                ):
                    doomed.append(int(entry.name))
    for victim in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def test_a_build_lost_with_its_launcher_runs_again_and_a_failed_step_does_not(
    stack: Any, make_repo: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "first-attempt-started"
    repo = make_repo({"screwdriver.yaml": _yaml(marker)})
    owner = User.objects.create_user(username="alice", password="pw-alice-123")
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=owner)
    event = start_event(pipeline=pipeline, start_from="~commit", creator=ALICE)
    main = Build.objects.get(event=event, job__name="main")

    def first_attempt_printed() -> bool:
        step = Step.objects.filter(build=main, name="work").first()
        return step is not None and step_log(main, "work") == ["first"]

    wait_until(first_attempt_printed, timeout=90, what="the first attempt to print")
    main.refresh_from_db()
    _kill_launcher(main)

    def retried() -> bool:
        reap()  # what the periodic reaper does once the lease (4 s here) has lapsed
        return Build.objects.get(pk=main.pk).infra_retries == 1

    wait_until(retried, timeout=60, interval=1, what="the lost build to be queued again")
    ended = wait_until(
        lambda: (b := Build.objects.get(pk=main.pk)).is_finished and b,
        timeout=90,
        what="the second attempt to end",
    )
    assert ended.status == BuildStatus.SUCCESS, ended.status_message
    assert step_log(ended, "work") == ["second attempt"]
    assert Build.objects.filter(event=event, job__name="main").count() == 1

    broken = wait_until(
        lambda: (b := Build.objects.get(event=event, job__name="broken")).is_finished and b,
        timeout=90,
        what="the failing build to end",
    )
    reap()
    broken.refresh_from_db()
    assert (broken.status, broken.infra_retries) == (BuildStatus.FAILURE, 0)
