"""Real builds: the whole log downloaded, and the failed jobs of an event restarted together."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from builds.models import Build, BuildStatus
from conftest import wait_until
from pipelines.models import Event, Pipeline
from pipelines.services import Creator, create_pipeline, restart_event, start_event

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

YAML = """
shared:
  image: buildpack-deps
jobs:
  build:
    requires: [~commit]
    steps:
      - greet: echo "hello from $SD_JOB_NAME"
      - count: for i in 1 2 3; do echo "line $i"; done
  flaky:
    requires: [~commit]
    steps:
      - check: echo "fixed=$(meta get fixed)" && test "$(meta get fixed)" = yes
  ship:
    requires: [build, flaky]
    steps:
      - ship: echo shipped
"""

ALICE = Creator("Alice", "alice")


def finished(event: Event) -> Event | None:
    event.refresh_from_db()
    busy = Build.objects.filter(event=event, status__in=["QUEUED", "RUNNING", "CREATED"])
    return None if busy.exists() or event.status == Event.Status.IN_PROGRESS else event


def test_a_real_builds_whole_log_then_a_restart_of_its_failed_job(
    stack: Any, make_repo: Any
) -> None:
    owner = User.objects.create_user(username="alice", password="pw-alice-123")
    repo = make_repo({"screwdriver.yaml": YAML})
    pipeline: Pipeline = create_pipeline(checkout_url=repo.checkout_url, user=owner)
    first = start_event(pipeline=pipeline, start_from="~commit", creator=ALICE)
    wait_until(lambda: finished(first), timeout=90, what="the first event to finish")
    build = Build.objects.get(event=first, job__name="build")
    assert build.status == BuildStatus.SUCCESS
    assert Build.objects.get(event=first, job__name="flaky").status == BuildStatus.FAILURE

    client = APIClient()
    client.force_authenticate(owner)
    response = client.get(f"/v4/builds/{build.pk}/logs")
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    greet = text.index("=== step greet (exit code 0) ===\nhello from build\n")
    count = text.index("=== step count (exit code 0) ===\nline 1\nline 2\nline 3\n")
    assert 0 <= greet < count

    again = restart_event(
        parent_event=first, start_from="~failed", creator=ALICE, meta={"fixed": "yes"}
    )
    wait_until(lambda: finished(again), timeout=90, what="the restart to finish")

    ran = dict(Build.objects.filter(event=again).values_list("job__name", "status"))
    assert ran == {"flaky": BuildStatus.SUCCESS, "ship": BuildStatus.SUCCESS}
    assert again.restart_jobs == ["flaky"]
