"""An event whose builds all gave way to a newer event's (COLLAPSED) ends; it does not hang.

Events start on a pipeline made from a screwdriver.yaml's text by the real services, without
git (`pipelines.tests.factories`).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from builds import services
from builds.models import Build, BuildStatus
from pipelines.models import Event, Pipeline
from pipelines.services import Creator
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml

pytestmark = pytest.mark.django_db

ONE_JOB = """
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - main: echo main
  other:
    image: alpine
    requires: [~commit]
    steps:
      - other: echo other
"""


@pytest.fixture
def pipeline() -> Pipeline:
    return pipeline_from_yaml(ONE_JOB, owner=User.objects.create_user(username="alice"))


def new_event(pipeline: Pipeline, start_from: str = "~commit") -> Event:
    return event_from_yaml(pipeline, ONE_JOB, start_from=start_from, creator=Creator("A", "alice"))


def build_of(event: Event, job: str) -> Build:
    return Build.objects.get(event=event, job__name=job)


def test_an_event_whose_only_build_collapsed_ends_aborted(pipeline: Pipeline) -> None:
    services.mark_running(build_id=build_of(new_event(pipeline, "main"), "main").pk)
    older = new_event(pipeline, "main")
    assert build_of(older, "main").status == BuildStatus.BLOCKED

    new_event(pipeline, "main")

    older.refresh_from_db()
    assert build_of(older, "main").status == BuildStatus.COLLAPSED
    assert older.status == Event.Status.ABORTED


def test_a_collapsed_build_beside_a_successful_one_leaves_the_event_successful(
    pipeline: Pipeline,
) -> None:
    services.mark_running(build_id=build_of(new_event(pipeline, "main"), "main").pk)
    older = new_event(pipeline)
    services.mark_running(build_id=build_of(older, "other").pk)
    services.finish_build(build_id=build_of(older, "other").pk, status=BuildStatus.SUCCESS)

    new_event(pipeline, "main")

    older.refresh_from_db()
    assert build_of(older, "main").status == BuildStatus.COLLAPSED
    assert older.status == Event.Status.SUCCESS
