"""A build's stats: the times its status changes stamp, and what its engine reports."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from builds import lifecycle, stats
from builds.models import Build, BuildStatus
from executors.base import start_stats
from pipelines.models import Event, Job, Pipeline

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def rows(db: None) -> tuple[Job, Event]:
    pipeline = Pipeline.objects.create(scm_uri="local:/stats", checkout_url="/stats.git")
    job = Job.objects.create(pipeline=pipeline, name="main")
    return job, Event.objects.create(pipeline=pipeline, sha="a" * 40)


def new_build(rows: tuple[Job, Event], status: str) -> Build:
    job, event = rows
    return lifecycle.create(job=job, event=event, number=1, sha="a" * 40, status=status)


def test_a_queued_build_starts_with_its_queue_enter_time(rows: tuple[Job, Event]) -> None:
    with time_machine.travel(T0, tick=False):
        build = new_build(rows, BuildStatus.QUEUED)
    build.refresh_from_db()
    assert build.stats == {"queueEnterTime": "2026-03-01T12:00:00.000Z"}


def test_a_join_enters_the_queue_when_promoted_and_a_wait_keeps_the_first_time(
    rows: tuple[Job, Event],
) -> None:
    with time_machine.travel(T0, tick=False):
        build = new_build(rows, BuildStatus.CREATED)
    assert Build.objects.get(pk=build.pk).stats == {}
    with time_machine.travel(T0.replace(minute=1), tick=False):
        lifecycle.transition(build.pk, BuildStatus.QUEUED)
    with time_machine.travel(T0.replace(minute=2), tick=False):
        lifecycle.transition(build.pk, BuildStatus.BLOCKED)
    with time_machine.travel(T0.replace(minute=3), tick=False):
        lifecycle.transition(build.pk, BuildStatus.QUEUED)
        lifecycle.transition(build.pk, BuildStatus.RUNNING)
    assert Build.objects.get(pk=build.pk).stats == {
        "queueEnterTime": "2026-03-01T12:01:00.000Z",
        "blockedStartTime": "2026-03-01T12:02:00.000Z",
    }


def test_an_engine_reports_its_host_and_image_pull_and_nothing_else(
    rows: tuple[Job, Event],
) -> None:
    build = new_build(rows, BuildStatus.QUEUED)
    state = {
        "pid": 1,
        "stats": {
            **start_stats(image_pull_start=T0),
            "queueEnterTime": "forged",
            "other": "x",
        },
    }
    stats.record(build.pk, stats.from_engine(state))
    recorded = Build.objects.get(pk=build.pk).stats
    assert recorded["imagePullStartTime"] == "2026-03-01T12:00:00.000Z"
    assert recorded["hostname"]
    assert recorded["queueEnterTime"] != "forged"
    assert "other" not in recorded
    assert stats.from_engine({"pid": 1}) == {}
