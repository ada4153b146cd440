"""`screwdriver.cd/manualStartEnabled: false`: people cannot start the job, its triggers can."""

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
from pipelines.config.annotations import starts_by_hand
from pipelines.models import Event, Pipeline
from pipelines.services import Creator, create_pipeline, manual_start_refusal, start_event

pytestmark = [pytest.mark.django_db, pytest.mark.git]

YAML = """
shared:
  image: alpine
  steps:
    - run: echo run
jobs:
  build:
    requires: [~commit]
  deploy:
    requires: [build]
    annotations:
      screwdriver.cd/manualStartEnabled: false
"""


@pytest.fixture(autouse=True)
def _no_hook_delivery(settings: Any) -> None:
    settings.SD_API_URL = "http://127.0.0.1:9"


@pytest.fixture
def pipeline(make_repo: Callable[..., GitRepo], owner: User) -> Pipeline:
    return create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": YAML}).checkout_url, user=owner
    )


def _finished_event(pipeline: Pipeline) -> Event:
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("A", "alice"))
    for name in ("build", "deploy"):
        build = Build.objects.get(event=event, job__name=name)
        services.mark_running(build_id=build.pk)
        services.finish_build(build_id=build.pk, status=BuildStatus.SUCCESS)
    return event


@pytest.mark.parametrize(
    ("value", "allowed"),
    [(None, True), (True, True), ("true", True), (False, False), ("false", False)],
)
def test_a_job_starts_by_hand_unless_its_annotation_is_false(value: object, allowed: bool) -> None:
    annotations = {} if value is None else {"screwdriver.cd/manualStartEnabled": value}
    assert starts_by_hand({"annotations": annotations}) is allowed


def test_the_api_refuses_to_start_the_job_by_hand_with_a_sentence(
    pipeline: Pipeline, owner: User
) -> None:
    client = APIClient()
    client.force_authenticate(owner)

    response = client.post(
        "/v4/events", {"pipelineId": pipeline.pk, "startFrom": "deploy"}, format="json"
    )

    assert response.status_code == 403
    assert "manualStartEnabled" in response.json()["message"]
    assert not Event.objects.exists()
    assert (
        client.post(
            "/v4/events", {"pipelineId": pipeline.pk, "startFrom": "build"}, format="json"
        ).status_code
        == 201
    )


def test_its_trigger_still_starts_it(pipeline: Pipeline) -> None:
    event = _finished_event(pipeline)

    assert Build.objects.get(event=event, job__name="deploy").status == BuildStatus.SUCCESS


def test_a_restart_of_the_job_is_refused_too(pipeline: Pipeline, owner: User) -> None:
    parent = _finished_event(pipeline)
    client = APIClient()
    client.force_authenticate(owner)

    response = client.post(
        "/v4/events", {"parentEventId": parent.pk, "startFrom": "deploy"}, format="json"
    )

    assert response.status_code == 403
    assert manual_start_refusal(pipeline=pipeline, start_from="PR-3:deploy") is not None
    assert manual_start_refusal(pipeline=pipeline, start_from="~commit") is None


def test_the_pages_offer_no_start_or_restart_of_the_job(
    pipeline: Pipeline, admin_client: Client
) -> None:
    event = _finished_event(pipeline)
    deploy = Build.objects.get(event=event, job__name="deploy")
    build = Build.objects.get(event=event, job__name="build")

    html = admin_client.get(reverse("pipelines:event", args=[pipeline.pk, event.pk])).content
    assert b'<option value="build"' in html and b'<option value="deploy"' not in html
    deploy_page = reverse("builds:detail", args=[pipeline.pk, deploy.pk])
    assert b'id="restart-button"' not in admin_client.get(deploy_page).content
    build_page = reverse("builds:detail", args=[pipeline.pk, build.pk])
    assert b'id="restart-button"' in admin_client.get(build_page).content

    response = admin_client.post(
        reverse("pipelines:event-restart", args=[pipeline.pk, event.pk]),
        {"start_from": "deploy", "mode": "fresh"},
    )
    assert response.status_code == 302
    assert Event.objects.count() == 1
