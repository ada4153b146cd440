"""Infrastructure retries: a build the reaper finds lost runs again, a failed step never does."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.utils import timezone

from builds import logs, services
from builds.dispatch import reap
from builds.models import Build, BuildStatus, LogBatch, Step
from pipelines.config import parse_pipeline_yaml
from pipelines.models import Event, Pipeline
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml

pytestmark = pytest.mark.django_db

YAML = """
shared:
  image: alpine
jobs:
  main:
    requires: [~commit]
    annotations:
      screwdriver.cd/retries: 2
    steps:
      - test: echo test
  publish:
    requires: [main]
    steps:
      - publish: echo publish
"""


@pytest.fixture(autouse=True)
def _no_hook_delivery(settings: Any) -> None:
    settings.SD_API_URL = "http://127.0.0.1:9"


@pytest.fixture
def pipeline(owner: User) -> Pipeline:
    return pipeline_from_yaml(YAML, owner=owner)


def main_build(event: Event) -> Build:
    return Build.objects.get(event=event, job__name="main")


def start_and_lose(build: Build) -> datetime:
    """The launcher starts and logs a line, then its machine dies: return a moment its lease
    has lapsed."""
    build = services.mark_running(build_id=build.pk)
    step = Step.objects.get(build=build, name="test")
    services.update_step(step=step, start_time=timezone.now())
    logs.append_batch(step=step, seq=0, first_line=0, lines=[{"t": 1, "m": "half done"}])
    assert build.lease_expires_at is not None
    return build.lease_expires_at + timedelta(seconds=1)


def test_a_lost_build_is_queued_again_until_its_retries_are_spent(pipeline: Pipeline) -> None:
    event = event_from_yaml(pipeline, YAML)
    build = main_build(event)

    for attempt in (1, 2):
        with time_machine.travel(start_and_lose(build), tick=False):
            assert reap()["retried"] == 1
        build.refresh_from_db()
        assert build.status == BuildStatus.QUEUED
        assert build.infra_retries == attempt
        assert (build.dispatched_at, build.lease_expires_at, build.start_time) == (None,) * 3
        assert build.status_message.startswith(f"Retry {attempt} of 2: The build was lost")
        step = Step.objects.get(build=build, name="test")
        assert (step.lines, step.start_time) == (0, None)
        assert not LogBatch.objects.filter(step__build=build).exists()
        event.refresh_from_db()
        assert event.status == Event.Status.IN_PROGRESS

    with time_machine.travel(start_and_lose(build), tick=False):
        assert reap() == {"failed": 1, "overdue": 0, "requeued": 0, "retried": 0}
    build.refresh_from_db()
    assert build.status == BuildStatus.FAILURE
    assert build.infra_retries == 2


def test_a_retried_build_that_passes_starts_the_next_job_in_the_same_event(
    pipeline: Pipeline,
) -> None:
    event = event_from_yaml(pipeline, YAML)
    build = main_build(event)
    with time_machine.travel(start_and_lose(build), tick=False):
        reap()

    services.mark_running(build_id=build.pk)
    services.finish_build(build_id=build.pk, status=BuildStatus.SUCCESS)

    assert Build.objects.filter(event=event).count() == 2
    assert Build.objects.get(event=event, job__name="publish").status == BuildStatus.QUEUED


def test_a_build_whose_step_failed_is_not_retried_when_it_is_lost_after(
    pipeline: Pipeline,
) -> None:
    build = main_build(event_from_yaml(pipeline, YAML))
    lapsed = start_and_lose(build)
    services.update_step(step=Step.objects.get(build=build, name="test"), code=1)

    with time_machine.travel(lapsed, tick=False):
        assert reap()["failed"] == 1
    build.refresh_from_db()
    assert (build.status, build.infra_retries) == (BuildStatus.FAILURE, 0)


def test_a_build_its_launcher_reported_failed_is_not_retried(pipeline: Pipeline) -> None:
    build = main_build(event_from_yaml(pipeline, YAML))
    lapsed = start_and_lose(build)
    services.finish_build(build_id=build.pk, status=BuildStatus.FAILURE)

    with time_machine.travel(lapsed + timedelta(days=1), tick=False):
        assert reap()["retried"] == 0
    build.refresh_from_db()
    assert (build.status, build.infra_retries) == (BuildStatus.FAILURE, 0)


def test_a_job_without_the_annotation_fails_when_lost(owner: User) -> None:
    yaml = YAML.replace("screwdriver.cd/retries: 2", "screwdriver.cd/timeout: 10")
    build = main_build(event_from_yaml(pipeline_from_yaml(yaml, owner=owner), yaml))

    with time_machine.travel(start_and_lose(build), tick=False):
        assert reap()["failed"] == 1


@pytest.mark.parametrize("value", [0, 5, "3"])
def test_the_parser_takes_retries_from_0_to_5_without_a_warning(value: object) -> None:
    parsed = parse_pipeline_yaml(YAML.replace("retries: 2", f"retries: {value!r}"))

    assert not parsed.get("errors")
    assert not any("retries" in w for w in parsed.get("warnMessages", []))


@pytest.mark.parametrize("value", ["6", "-1", "true", "'two'", "1.5"])
def test_the_parser_refuses_other_retries(value: str) -> None:
    parsed = parse_pipeline_yaml(YAML.replace("retries: 2", f"retries: {value}"))

    assert any(
        "screwdriver.cd/retries must be a whole number from 0 to 5" in e for e in parsed["errors"]
    )
