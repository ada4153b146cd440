"""Freeze windows: FROZEN inside the window, queued again when it ends, `[force start]`.

The service tests start events on pipelines made from a screwdriver.yaml's text by the real
services, without git (`pipelines.tests.factories`); the slow tests run real builds through
the worker and the launcher, which check out a real git repository.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django_q.models import Schedule

from builds import services
from builds.models import Build, BuildStatus
from builds.services import freeze
from conftest import wait_until
from pipelines.models import Event, Job, Pipeline
from pipelines.services import Creator, create_pipeline, start_event
from pipelines.services.pipelines import PipelineError
from pipelines.tasks import release_frozen_builds
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _until(windows: list[str], now: str) -> datetime | None:
    return freeze.frozen_until([w for w in map(freeze.parse_window, windows) if w], _at(now))


# --- when a window ends ---------------------------------------------------------------------


def test_a_moment_outside_every_window_is_not_frozen() -> None:
    assert _until(["* 10-21 ? * *"], "2026-01-07 09:59:59") is None
    assert _until(["* 10-21 ? * *"], "2026-01-07 22:00:00") is None


def test_an_hour_range_window_ends_at_the_first_hour_after_it() -> None:
    assert _until(["* 10-21 ? * *"], "2026-01-07 12:34:56") == _at("2026-01-07 22:00")


def test_a_minute_range_window_ends_at_the_first_free_minute() -> None:
    assert _until(["0-29 * ? * *"], "2026-01-07 10:15:42") == _at("2026-01-07 10:30")


def test_a_weekday_window_ends_on_the_first_free_day() -> None:
    # 2026-01-09 is a Friday; Monday to Friday (1-5) are frozen, Saturday is not.
    assert _until(["* * ? * 1-5"], "2026-01-09 15:00") == _at("2026-01-10 00:00")


def test_a_sunday_written_as_7_is_sunday() -> None:
    # 2026-01-11 is a Sunday.
    assert _until(["* * ? * 7"], "2026-01-11 08:00") == _at("2026-01-12 00:00")


def test_a_day_of_month_window_with_l_covers_the_last_day_of_the_month() -> None:
    assert _until(["* * L * ?"], "2026-02-28 08:00") == _at("2026-03-01 00:00")
    assert _until(["* * L * ?"], "2026-01-30 08:00") is None


def test_a_month_window_ends_when_the_month_does() -> None:
    assert _until(["* * ? 12 *"], "2026-12-24 18:00") == _at("2027-01-01 00:00")


def test_back_to_back_windows_end_when_the_last_one_does() -> None:
    windows = ["* 10-21 ? * *", "* 22-23 ? * *"]

    assert _until(windows, "2026-01-07 12:00") == _at("2026-01-08 00:00")


def test_a_window_that_never_ends_freezes_nothing() -> None:
    assert _until(["* * ? * *"], "2026-01-07 12:00") is None


def test_an_entry_that_cannot_be_read_is_ignored() -> None:
    assert freeze.parse_window("* * ? * 5L") is None
    assert freeze.parse_window("not a cron") is None


# --- the service: builds about to be queued -------------------------------------------------

YAML = """
jobs:
  main:
    image: alpine
    requires: [~commit]
    freezeWindows: ["{window}"]
    steps:
      - hi: echo "ran after the freeze"
"""


# Every day from 10:00 to 21:59: a build started inside it is re-queued at 22:00.
WINDOW = "* 10-21 ? * *"
FROZEN_YAML = YAML.replace("{window}", WINDOW)


def _pipeline() -> Pipeline:
    """A pipeline whose one job has the freeze window WINDOW, made without git."""
    user = User.objects.create_user(username="alice", password="pw-alice-123")
    return pipeline_from_yaml(FROZEN_YAML, owner=user)


def _start(pipeline: Pipeline, cause: str = "") -> Build:
    """The build of an event at the pipeline's head, started without git."""
    event = event_from_yaml(
        pipeline, FROZEN_YAML, creator=Creator("alice", "alice"), cause_message=cause
    )
    return Build.objects.get(event=event)


def _git_pipeline(make_repo: Any, window: str) -> Pipeline:
    """A pipeline on a real repository, which a launcher checks out."""
    user = User.objects.create_user(username="alice", password="pw-alice-123")
    repo = make_repo({"screwdriver.yaml": YAML.replace("{window}", window)})
    return create_pipeline(checkout_url=repo.checkout_url, user=user)


def _git_start(pipeline: Pipeline, cause: str = "") -> Build:
    """The build of an event at the head of the pipeline's repository, read through the SCM."""
    event = start_event(
        pipeline=pipeline,
        start_from="~commit",
        creator=Creator("alice", "alice"),
        cause_message=cause,
    )
    return Build.objects.get(event=event)


def _status(build: Build) -> str:
    return Build.objects.values_list("status", flat=True).get(pk=build.pk)


@pytest.mark.django_db
def test_a_build_started_inside_its_window_is_frozen_until_the_window_ends() -> None:
    pipeline = _pipeline()

    with time_machine.travel(_at("2026-01-07 12:34:56"), tick=False):
        build = _start(pipeline)

    build.refresh_from_db()
    assert build.status == BuildStatus.FROZEN
    assert build.status_message == "Blocked by freeze window, re-queued at 2026-01-07T22:00:00Z."
    assert Event.objects.get(pk=build.event_id).status == Event.Status.IN_PROGRESS
    release = Schedule.objects.get(name=freeze.release_schedule_name(build.job_id))
    assert release.func == "pipelines.tasks.release_frozen_builds"
    assert release.schedule_type == Schedule.ONCE
    assert release.next_run == _at("2026-01-07 22:00")


@pytest.mark.django_db
def test_a_build_started_outside_its_window_is_queued() -> None:
    pipeline = _pipeline()

    with time_machine.travel(_at("2026-01-07 08:00"), tick=False):
        build = _start(pipeline)

    assert _status(build) == BuildStatus.QUEUED


@pytest.mark.django_db
def test_force_start_in_the_cause_message_skips_the_freeze() -> None:
    pipeline = _pipeline()

    with time_machine.travel(_at("2026-01-07 12:00"), tick=False):
        build = _start(pipeline, cause="[force start] hotfix for the outage")

    assert _status(build) == BuildStatus.QUEUED


@pytest.mark.django_db
def test_force_start_is_matched_as_screwdriver_matches_it_case_and_all() -> None:
    pipeline = _pipeline()

    with time_machine.travel(_at("2026-01-07 12:00"), tick=False):
        build = _start(pipeline, cause="[Force Start] please")

    assert _status(build) == BuildStatus.FROZEN


@pytest.mark.django_db
def test_a_newer_frozen_build_of_the_job_collapses_the_older_one() -> None:
    pipeline = _pipeline()

    with time_machine.travel(_at("2026-01-07 12:00"), tick=False):
        older = _start(pipeline)
        newer = _start(pipeline)

    older.refresh_from_db()
    assert older.status == BuildStatus.COLLAPSED
    assert older.status_message == f"Collapsed into build {newer.pk} of a newer event."
    assert _status(newer) == BuildStatus.FROZEN


@pytest.mark.django_db
def test_a_force_started_build_collapses_the_frozen_one_it_overtakes() -> None:
    pipeline = _pipeline()

    with time_machine.travel(_at("2026-01-07 12:00"), tick=False):
        frozen = _start(pipeline)
        forced = _start(pipeline, cause="[force start]")

    assert _status(frozen) == BuildStatus.COLLAPSED
    assert _status(forced) == BuildStatus.QUEUED


@pytest.mark.django_db
def test_the_release_keeps_a_build_frozen_while_its_window_lasts() -> None:
    pipeline = _pipeline()
    with time_machine.travel(_at("2026-01-07 12:00"), tick=False):
        build = _start(pipeline)

    with time_machine.travel(_at("2026-01-07 21:59"), tick=False):
        assert release_frozen_builds(build.job_id) == []

    assert _status(build) == BuildStatus.FROZEN


@pytest.mark.django_db
def test_the_release_queues_the_build_once_its_window_has_ended() -> None:
    pipeline = _pipeline()
    with time_machine.travel(_at("2026-01-07 12:00"), tick=False):
        build = _start(pipeline)

    with time_machine.travel(_at("2026-01-07 22:00"), tick=False):
        assert release_frozen_builds(build.job_id) == [build.pk]

    build.refresh_from_db()
    assert (build.status, build.status_message) == (BuildStatus.QUEUED, "")


@pytest.mark.django_db
def test_aborting_a_frozen_build_says_so_and_its_release_does_not_bring_it_back() -> None:
    pipeline = _pipeline()
    with time_machine.travel(_at("2026-01-07 12:00"), tick=False):
        build = _start(pipeline)
        services.abort_build(build_id=build.pk, message="Aborted by alice")

    build.refresh_from_db()
    assert (build.status, build.status_message) == (
        BuildStatus.ABORTED,
        "Frozen build aborted by alice",
    )
    assert Event.objects.get(pk=build.event_id).status == Event.Status.ABORTED
    # Nothing of the job waits FROZEN: its one-off release is gone, and a late run is harmless.
    assert not Schedule.objects.filter(name=freeze.release_schedule_name(build.job_id)).exists()
    with time_machine.travel(_at("2026-01-07 22:00"), tick=False):
        assert release_frozen_builds(build.job_id) == []
    assert _status(build) == BuildStatus.ABORTED


@pytest.mark.django_db
def test_a_released_build_still_waits_for_what_blocks_it() -> None:
    pipeline = _pipeline()
    with time_machine.travel(_at("2026-01-07 12:00"), tick=False):
        frozen = _start(pipeline)
        running = _start(pipeline, cause="[force start]")
    # The forced build collapsed the frozen one; freeze a third one behind the running one.
    Build.objects.filter(pk=running.pk).update(status=BuildStatus.RUNNING)
    with time_machine.travel(_at("2026-01-07 13:00"), tick=False):
        waiting = _start(pipeline)
    assert (_status(frozen), _status(waiting)) == (BuildStatus.COLLAPSED, BuildStatus.FROZEN)

    with time_machine.travel(_at("2026-01-07 22:00"), tick=False):
        assert release_frozen_builds() == []

    assert _status(waiting) == BuildStatus.BLOCKED


@pytest.mark.django_db
def test_a_blocked_build_let_through_inside_a_window_is_frozen_instead() -> None:
    pipeline = _pipeline()
    with time_machine.travel(_at("2026-01-07 08:00"), tick=False):
        first = _start(pipeline)
        services.mark_running(build_id=first.pk)
        second = _start(pipeline)
    assert _status(second) == BuildStatus.BLOCKED

    with time_machine.travel(_at("2026-01-07 12:00"), tick=False):
        services.finish_build(build_id=first.pk, status=BuildStatus.SUCCESS)

    second.refresh_from_db()
    assert second.status == BuildStatus.FROZEN
    assert second.status_message.endswith("2026-01-07T22:00:00Z.")


@pytest.mark.django_db
def test_a_disabled_jobs_build_is_never_frozen_because_it_is_never_made() -> None:
    # Screwdriver skips disabled jobs before it looks at freeze windows; so does start_event.
    pipeline = _pipeline()
    Job.objects.filter(pipeline=pipeline).update(state=Job.State.DISABLED)

    with time_machine.travel(_at("2026-01-07 12:00"), tick=False), pytest.raises(PipelineError):
        _start(pipeline)

    assert not Build.objects.filter(status=BuildStatus.FROZEN).exists()


# --- real builds ----------------------------------------------------------------------------


def _window_around(moment: datetime) -> str:
    """A window over the hour of ``moment`` only; the real present is hours away from it."""
    return f"* {moment.hour} ? * *"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_frozen_build_runs_to_success_on_the_worker_after_its_window(
    stack: Any, make_repo: Any
) -> None:
    # The worker and the launcher run on the real clock, so the frozen moment is three hours
    # before the real present, and the release happens back in the present, after the window.
    frozen_at = datetime.now(tz=UTC) - timedelta(hours=3)
    pipeline = _git_pipeline(make_repo, _window_around(frozen_at))

    with time_machine.travel(frozen_at, tick=True):
        build = _git_start(pipeline)
        assert _status(build) == BuildStatus.FROZEN
        window_end = frozen_at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        assert build.job_id
        assert Build.objects.get(pk=build.pk).status_message.endswith(
            f"{window_end:%Y-%m-%dT%H:%M:%SZ}."
        )
    assert datetime.now(tz=UTC) > window_end

    # The worker's scheduler may run the same release (its ONCE schedule is already due) at
    # this very moment; whichever runs first queues the build, the other finds it queued.
    release_frozen_builds(build.job_id)

    wait_until(
        lambda: _status(build) == BuildStatus.SUCCESS,
        timeout=60,
        what="the released build to succeed",
    )
    assert Event.objects.get(pk=build.event_id).status == Event.Status.SUCCESS


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_force_started_build_runs_at_once_inside_its_window(stack: Any, make_repo: Any) -> None:
    # The window is the real present's hour: the worker's real clock is inside it too.
    pipeline = _git_pipeline(make_repo, _window_around(datetime.now(tz=UTC)))

    build = _git_start(pipeline, cause="[force start] ship it")

    wait_until(
        lambda: _status(build) == BuildStatus.SUCCESS,
        timeout=60,
        what="the force-started build to succeed",
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_workers_scheduler_releases_the_frozen_build_on_its_own(
    stack: Any, make_repo: Any
) -> None:
    frozen_at = datetime.now(tz=UTC) - timedelta(hours=3)
    pipeline = _git_pipeline(make_repo, _window_around(frozen_at))
    with time_machine.travel(frozen_at, tick=True):
        build = _git_start(pipeline)
        assert _status(build) == BuildStatus.FROZEN

    # No call from the test: the ONCE schedule at the window's end (now past) does it.
    wait_until(
        lambda: _status(build) == BuildStatus.SUCCESS,
        timeout=90,
        what="django-q2's scheduler to release the build and the build to succeed",
    )
    assert not Schedule.objects.filter(name=freeze.release_schedule_name(build.job_id)).exists()
