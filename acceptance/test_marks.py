"""What a job's annotations and a build's meta mean to a user: a job nobody may start by hand,
the variables a build is given, an event's label and a build's warning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from acceptance.stack import Stack, builds_of, finished, log_lines, start, wait_for

pytestmark = pytest.mark.xdist_group("builds")

PIPELINE = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - show: echo "ui=$SD_UI_BUILD_URL store=$SD_STORE_URL scheduled=$SD_SCHEDULED_BUILD"
      - label: meta set label "release-7"
      - warn: meta set build.warning "the docs were not built"
  deploy:
    image: buildpack-deps
    requires: [main]
    annotations:
      screwdriver.cd/manualStartEnabled: false
    steps:
      - ship: echo shipped
"""


def test_a_job_that_starts_only_from_its_trigger_and_a_build_that_marks_its_event(
    stack: Stack, repo: Callable[..., tuple[Path, Path]]
) -> None:
    bare, _ = repo(PIPELINE, name="marks")
    event = start(stack, bare)
    rows = wait_for(
        lambda: (b := builds_of(stack, event["id"])) and len(b) == 2 and b,
        timeout=120,
        what="deploy to be started by its trigger",
    )
    by_job = {row["jobId"]: row for row in rows}
    ended = {jid: finished(stack, row["id"], timeout=120) for jid, row in by_job.items()}
    assert {b["status"] for b in ended.values()} == {"SUCCESS"}
    main = min(ended.values(), key=lambda b: b["id"])
    api = stack.api()

    ui = f"{stack.url}/pipelines/{event['pipelineId']}/builds/{main['id']}"
    assert log_lines(stack, main["id"], "show") == [
        f"ui={ui} store={stack.url}/v4/ scheduled=false"
    ]
    assert api.get(f"/events/{event['id']}").json()["meta"]["label"] == "release-7"
    assert main["meta"]["build"]["warning"] == "the docs were not built"

    refused = api.post("/events", json={"pipelineId": event["pipelineId"], "startFrom": "deploy"})
    assert refused.status_code == 403
    assert "manualStartEnabled" in refused.json()["message"]
