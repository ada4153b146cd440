"""Restart from a job (inherits) against a fresh run from a job (inherits nothing), for real."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from builds.logs import read_page
from builds.models import Build, BuildStatus, Step
from conftest import GitRepo, wait_until
from pipelines.models import Event
from pipelines.services import create_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

JOIN = """
jobs:
  a:
    image: alpine
    requires: [~commit]
    steps:
      - set: meta set from.a "a-$SD_BUILD_ID"
  b:
    image: alpine
    requires: [~commit]
    steps:
      - see: echo "b sees $(meta get from.a)"
  c:
    image: alpine
    requires: [a, b]
    steps:
      - see: echo "c sees $(meta get from.a)"
"""


def _settled(event_id: int) -> Event | None:
    event = Event.objects.get(pk=event_id)
    if Build.objects.filter(event=event, status__in=["QUEUED", "RUNNING"]).exists():
        return None
    return None if event.status == Event.Status.IN_PROGRESS else event


def _log(event_id: int, job: str, step: str = "see") -> list[str]:
    build = Build.objects.get(event_id=event_id, job__name=job)
    return [
        line["m"]
        for line in read_page(step=Step.objects.get(build=build, name=step), pages=100).lines
    ]


def _jobs(event_id: int) -> dict[str, str]:
    return dict(Build.objects.filter(event_id=event_id).values_list("job__name", "status"))


def test_a_restart_inherits_meta_and_results_and_a_fresh_run_from_a_job_inherits_nothing(
    stack: Any, make_repo: Any
) -> None:
    user = User.objects.create_user(username="alice")
    repo: GitRepo = make_repo({"screwdriver.yaml": JOIN})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=user)
    client = APIClient()
    client.force_authenticate(user)
    first = client.post("/v4/events", {"pipelineId": pipeline.pk, "startFrom": "~commit"}).json()
    wait_until(lambda: _settled(first["id"]), timeout=90, what="the first event")
    a_build = Build.objects.get(event_id=first["id"], job__name="a")
    assert _jobs(first["id"]) == {"a": "SUCCESS", "b": "SUCCESS", "c": "SUCCESS"}

    restart = client.post(
        "/v4/events", {"pipelineId": pipeline.pk, "parentEventId": first["id"], "startFrom": "b"}
    ).json()
    wait_until(lambda: _settled(restart["id"]), timeout=90, what="the restart")

    # The restart ran b on the parent's meta, and its join took a's result from the parent.
    assert _jobs(restart["id"]) == {"b": "SUCCESS", "c": "SUCCESS"}
    assert _log(restart["id"], "b") == [f"b sees a-{a_build.pk}"]
    assert _log(restart["id"], "c") == [f"c sees a-{a_build.pk}"]

    head = repo.push({"README.md": "newer"}, "newer head")
    response = client.post("/v4/events", {"pipelineId": pipeline.pk, "startFrom": "b"})
    assert response.status_code == 201, response.content
    fresh = response.json()
    wait_until(lambda: _settled(fresh["id"]), timeout=90, what="the fresh run")

    # A fresh run: the branch head, no parent, no meta, and no older result starts the join.
    event = Event.objects.get(pk=fresh["id"])
    assert (event.parent_event_id, event.sha) == (None, head)
    assert _log(fresh["id"], "b") == ["b sees null"]
    assert Build.objects.get(event=event, job__name="b").status == BuildStatus.SUCCESS
    assert not Build.objects.filter(
        event=event, job__name="c", status__in=["QUEUED", "RUNNING", "SUCCESS"]
    ).exists()
