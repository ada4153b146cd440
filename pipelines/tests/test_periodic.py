"""Periodic builds: Screwdriver's H hashing, one CRON schedule per periodic job, real events."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from croniter import croniter
from django.contrib.auth.models import User
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from builds.models import Build, BuildStatus
from conftest import wait_until
from pipelines.config import parse_pipeline_yaml
from pipelines.config.cron import transform_cron
from pipelines.models import Event, Job, Pipeline
from pipelines.services import create_pipeline, start_periodic_build
from pipelines.services.pipelines import sync_jobs

YAML = """
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - hi: echo hi
  nightly:
    image: alpine
    annotations:
      screwdriver.cd/buildPeriodically: {cron}
    steps:
      - nightly: echo "nightly run"
"""


def _yaml(cron: str) -> str:
    return YAML.format(cron=f'"{cron}"')


def _pipeline(make_repo: Any, text: str) -> Pipeline:
    user = User.objects.create_user(username="alice", password="pw-alice-123")
    return create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": text}).checkout_url, user=user
    )


def _schedules(pipeline: Pipeline) -> list[Schedule]:
    return list(Schedule.objects.filter(name__startswith=f"sd-periodic-{pipeline.pk}-"))


def _sync(pipeline: Pipeline, text: str) -> None:
    sync_jobs(pipeline=pipeline, config=parse_pipeline_yaml(text))


@pytest.mark.django_db
def test_a_periodic_job_gets_one_cron_schedule_with_its_hashed_cron_in_utc(
    make_repo: Any,
) -> None:
    # One second before midnight, so even a hash of "0 0" fires later the same night.
    with time_machine.travel(datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC), tick=False):
        pipeline = _pipeline(make_repo, _yaml("H H(0-3) * * *"))

    nightly = Job.objects.get(pipeline=pipeline, name="nightly")
    cron = transform_cron("H H(0-3) * * *", nightly.pk)
    [schedule] = _schedules(pipeline)
    assert schedule.schedule_type == Schedule.CRON
    assert schedule.cron == cron
    assert schedule.func == "pipelines.tasks.start_periodic_build"
    assert ast.literal_eval(schedule.args) == nightly.pk
    minute, hour = (int(x) for x in cron.split()[:2])
    assert schedule.next_run == datetime(2026, 3, 1, hour, minute, tzinfo=UTC)


@pytest.mark.django_db
def test_django_q_computes_the_next_run_in_utc(make_repo: Any) -> None:
    pipeline = _pipeline(make_repo, _yaml("H 5 * * *"))
    [schedule] = _schedules(pipeline)
    minute = int(schedule.cron.split()[0])

    with time_machine.travel(datetime(2026, 7, 1, 12, 0, tzinfo=UTC), tick=False):
        next_run = schedule.calculate_next_run()

    assert next_run == datetime(2026, 7, 2, 5, minute, tzinfo=UTC)


@pytest.mark.django_db
def test_the_schedule_follows_the_file_when_the_cron_changes(make_repo: Any) -> None:
    pipeline = _pipeline(make_repo, _yaml("H H(0-3) * * *"))
    nightly = Job.objects.get(pipeline=pipeline, name="nightly")

    _sync(pipeline, _yaml("H 12 * * 1"))

    [schedule] = _schedules(pipeline)
    assert schedule.cron == transform_cron("H 12 * * 1", nightly.pk)
    assert schedule.cron.split()[1:] == ["12", "*", "*", "1"]
    assert schedule.next_run == croniter(schedule.cron, datetime.now(tz=UTC)).get_next(datetime)


@pytest.mark.django_db
def test_the_schedule_goes_when_the_annotation_goes(make_repo: Any) -> None:
    pipeline = _pipeline(make_repo, _yaml("H H * * *"))

    _sync(pipeline, YAML.replace("screwdriver.cd/buildPeriodically", "screwdriver.cd/timeout"))

    assert _schedules(pipeline) == []


@pytest.mark.django_db
def test_the_schedule_goes_when_the_job_goes(make_repo: Any) -> None:
    pipeline = _pipeline(make_repo, _yaml("H H * * *"))

    _sync(pipeline, YAML.split("  nightly:")[0])

    assert Job.objects.get(pipeline=pipeline, name="nightly").archived
    assert _schedules(pipeline) == []


@pytest.mark.django_db
def test_a_job_with_a_cron_screwdriver_refuses_gets_no_schedule(make_repo: Any) -> None:
    pipeline = _pipeline(make_repo, _yaml("H H(30-40) * * *"))

    assert _schedules(pipeline) == []


@pytest.mark.django_db
def test_a_disabled_jobs_schedule_is_removed_when_it_fires_and_starts_nothing(
    make_repo: Any,
) -> None:
    pipeline = _pipeline(make_repo, _yaml("H H * * *"))
    nightly = Job.objects.get(pipeline=pipeline, name="nightly")
    Job.objects.filter(pk=nightly.pk).update(state=Job.State.DISABLED)

    assert start_periodic_build(job_id=nightly.pk) is None

    assert _schedules(pipeline) == []
    assert not Event.objects.filter(pipeline=pipeline).exists()


@pytest.mark.django_db
def test_an_inactive_pipelines_schedules_are_removed_when_they_fire(make_repo: Any) -> None:
    pipeline = _pipeline(make_repo, _yaml("H H * * *"))
    nightly = Job.objects.get(pipeline=pipeline, name="nightly")
    Pipeline.objects.filter(pk=pipeline.pk).update(state=Pipeline.State.INACTIVE)

    assert start_periodic_build(job_id=nightly.pk) is None

    assert _schedules(pipeline) == []


@pytest.mark.django_db
def test_a_deleted_jobs_schedule_is_removed_when_it_fires(make_repo: Any) -> None:
    pipeline = _pipeline(make_repo, _yaml("H H * * *"))
    nightly_id = Job.objects.get(pipeline=pipeline, name="nightly").pk
    Job.objects.filter(pk=nightly_id).delete()

    assert start_periodic_build(job_id=nightly_id) is None

    assert _schedules(pipeline) == []


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_running_the_schedules_task_starts_a_real_event_from_the_job_at_the_branch_head(
    stack: Any, make_repo: Any
) -> None:
    pipeline = _pipeline(make_repo, _yaml("H H * * *"))
    [schedule] = _schedules(pipeline)

    event_id = import_string(schedule.func)(ast.literal_eval(schedule.args))

    event = Event.objects.get(pk=event_id)
    assert event.creator == {"name": "Screwdriver scheduler", "username": "sd:scheduler"}
    assert event.cause_message == "Started by periodic build scheduler"
    assert event.start_from == "nightly"
    assert event.sha == pipeline.last_seen_sha
    build = Build.objects.get(event=event)
    assert build.job.name == "nightly"
    wait_until(
        lambda: Build.objects.get(pk=build.pk).status == BuildStatus.SUCCESS,
        timeout=60,
        what="the periodic build to succeed",
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_workers_scheduler_starts_the_periodic_event_when_its_time_comes(
    stack: Any, make_repo: Any
) -> None:
    pipeline = _pipeline(make_repo, _yaml("H H * * *"))
    [schedule] = _schedules(pipeline)
    # The cron's moment has come: django-q2 runs what is due, then moves next_run on.
    Schedule.objects.filter(pk=schedule.pk).update(next_run=timezone.now() - timedelta(seconds=1))

    event = wait_until(
        lambda: Event.objects.filter(pipeline=pipeline, creator__username="sd:scheduler").first(),
        timeout=90,
        what="django-q2's scheduler to start the periodic event",
    )
    wait_until(
        lambda: Build.objects.filter(event=event, status=BuildStatus.SUCCESS).exists(),
        timeout=60,
        what="the periodic build to succeed",
    )
    schedule.refresh_from_db()
    assert schedule.next_run == croniter(schedule.cron, timezone.now()).get_next(datetime)
