"""Restart failed: every failed or aborted job of an event again, in one new event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from builds import services
from builds.models import Build, BuildStatus
from conftest import GitRepo
from pipelines.models import Event, Pipeline
from pipelines.services import (
    RESTART_FAILED,
    Creator,
    PipelineError,
    create_pipeline,
    restart_event,
    start_event,
)

pytestmark = [pytest.mark.django_db, pytest.mark.git]

ALICE = Creator("Alice", "alice")

YAML = """
shared:
  image: alpine
  steps:
    - run: echo run
jobs:
  lint:
    requires: [~commit]
  unit:
    requires: [~commit]
  docs:
    requires: [~commit]
  publish:
    requires: [lint, unit, docs]
"""


@pytest.fixture(autouse=True)
def _no_hook_delivery(settings: Any) -> None:
    settings.SD_API_URL = "http://127.0.0.1:9"


@pytest.fixture
def pipeline(make_repo: Callable[..., GitRepo], owner: User) -> Pipeline:
    return create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": YAML}).checkout_url, user=owner
    )


def build_of(event: Event, job: str) -> Build:
    return Build.objects.get(event=event, job__name=job)


def run(build: Build, status: str = BuildStatus.SUCCESS) -> None:
    services.mark_running(build_id=build.pk)
    services.finish_build(build_id=build.pk, status=status)


def failed_event(pipeline: Pipeline) -> Event:
    """lint failed, unit was aborted, docs passed: publish never ran."""
    event = start_event(pipeline=pipeline, start_from="~commit", creator=ALICE)
    run(build_of(event, "lint"), BuildStatus.FAILURE)
    services.abort_build(build_id=build_of(event, "unit").pk, message="stopped")
    run(build_of(event, "docs"))
    return event


def test_it_runs_the_failed_and_aborted_jobs_again_in_one_event(pipeline: Pipeline) -> None:
    parent = failed_event(pipeline)

    event = restart_event(parent_event=parent, start_from=RESTART_FAILED, creator=ALICE)

    assert (event.sha, event.parent_event_id, event.group_event_id) == (
        parent.sha,
        parent.pk,
        parent.pk,
    )
    assert event.start_from == "~failed" and event.restart_jobs == ["lint", "unit"]
    started = Build.objects.filter(event=event).values_list("job__name", "status")
    assert sorted(started) == [("lint", BuildStatus.QUEUED), ("unit", BuildStatus.QUEUED)]


def test_the_join_runs_once_both_restarted_jobs_pass_counting_the_one_that_had(
    pipeline: Pipeline,
) -> None:
    event = restart_event(parent_event=failed_event(pipeline), start_from="~failed", creator=ALICE)

    run(build_of(event, "lint"))
    assert build_of(event, "publish").status == BuildStatus.CREATED  # waits for unit
    run(build_of(event, "unit"))

    assert build_of(event, "publish").status == BuildStatus.QUEUED


def test_an_event_without_failures_has_nothing_to_restart(pipeline: Pipeline) -> None:
    event = start_event(pipeline=pipeline, start_from="~commit", creator=ALICE)
    for job in ("lint", "unit", "docs"):
        run(build_of(event, job))

    with pytest.raises(PipelineError, match="no failed or aborted build") as caught:
        restart_event(parent_event=event, start_from="~failed", creator=ALICE)
    assert caught.value.status == 422


def test_the_api_restarts_the_failed_jobs_from_post_events(
    pipeline: Pipeline, owner: User, member: User
) -> None:
    parent = failed_event(pipeline)
    body = {"parentEventId": parent.pk, "startFrom": "~failed"}
    client = APIClient()
    client.force_authenticate(member)
    assert client.post("/v4/events", body, format="json").status_code == 403
    client.force_authenticate(owner)

    response = client.post("/v4/events", body, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["parentEventId"] == parent.pk
    event = Event.objects.get(pk=response.json()["id"])
    assert event.restart_jobs == ["lint", "unit"]
    alone = client.post("/v4/events", {"pipelineId": pipeline.pk, "startFrom": "~failed"})
    assert alone.status_code == 400 and "parentEventId" in alone.json()["message"]


def test_the_event_page_offers_the_button_to_those_who_may_start_builds(
    pipeline: Pipeline, admin_client: Client, member_client: Client
) -> None:
    parent = failed_event(pipeline)
    page = reverse("pipelines:event", args=[pipeline.pk, parent.pk])

    assert 'id="restart-failed"' not in member_client.get(page).content.decode()
    html = admin_client.get(page).content.decode()
    assert 'id="restart-failed"' in html and "Restart failed (2)" in html

    response = admin_client.post(
        reverse("pipelines:event-restart", args=[pipeline.pk, parent.pk]),
        {"start_from": "~failed", "mode": "inherit"},
    )

    event = Event.objects.exclude(pk=parent.pk).get()
    assert response.status_code == 302
    assert response["Location"] == reverse("pipelines:event", args=[pipeline.pk, event.pk])
    assert event.restart_jobs == ["lint", "unit"]
    assert event.cause_message == f"Restarted the failed jobs of event {parent.pk} by alice"
