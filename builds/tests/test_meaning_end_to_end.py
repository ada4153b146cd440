"""A real build: the variables it is given, and the label and warning its meta sets."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from builds.models import Build, BuildStatus
from conftest import wait_until
from pipelines.models import Event, Pipeline
from pipelines.services import Creator, create_pipeline, start_event

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

NAMES = (
    "SD_SCHEDULED_BUILD SD_PARENT_EVENT_ID SD_UI_BUILD_URL SD_PRIVATE_PIPELINE SD_STORE_URL "
    "USER_SHELL_BIN"
)

YAML = f"""
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    annotations:
      screwdriver.cd/terminationGracePeriodSeconds: 30
    steps:
      - show: for n in {NAMES}; do eval "echo $n=\\${{$n}}"; done
      - label: meta set label "release 1.2"
      - warn: meta set build.warning.message "tests were skipped"
"""


def finished(event: Event) -> Event | None:
    event.refresh_from_db()
    busy = Build.objects.filter(event=event, status__in=["QUEUED", "RUNNING", "CREATED"])
    return None if busy.exists() or event.status == Event.Status.IN_PROGRESS else event


def test_a_real_build_prints_its_variables_and_marks_its_event_and_itself(
    stack: Any, make_repo: Any, settings: Any
) -> None:
    owner = User.objects.create_user(username="alice", password="pw-alice-123")
    repo = make_repo({"screwdriver.yaml": YAML})
    pipeline: Pipeline = create_pipeline(checkout_url=repo.checkout_url, user=owner)
    first = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("A", "alice"))
    wait_until(lambda: finished(first), timeout=90, what="the event to finish")
    build = Build.objects.get(event=first)
    assert build.status == BuildStatus.SUCCESS, build.status_message

    client = APIClient()
    client.force_authenticate(owner)
    lines = [row["m"] for row in client.get(f"/v4/builds/{build.pk}/steps/show/logs").json()]
    ui = f"{settings.SD_UI_URL}/pipelines/{pipeline.pk}/builds/{build.pk}"
    assert lines == [
        "SD_SCHEDULED_BUILD=false",
        "SD_PARENT_EVENT_ID=",
        f"SD_UI_BUILD_URL={ui}",
        "SD_PRIVATE_PIPELINE=false",
        f"SD_STORE_URL={settings.SD_API_URL}/v4/",
        f"USER_SHELL_BIN={settings.SD_STEP_SHELL}",
    ]

    event = client.get(f"/v4/events/{first.pk}").json()
    assert event["meta"]["label"] == "release 1.2"
    shown = client.get(f"/v4/builds/{build.pk}").json()
    assert shown["meta"]["build"]["warning"] == {"message": "tests were skipped"}
    assert Build.objects.get(pk=build.pk).warnings == ["tests were skipped"]
