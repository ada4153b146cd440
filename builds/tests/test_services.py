"""Build status transitions, completion (meta, OR edges, AND joins), timeouts and the reaper.

Builds come from pipelines made from a screwdriver.yaml's text by the real services, without
git (`pipelines.tests.factories`); nothing runs them: django-q2 stores the start tasks in its
ORM broker and no worker reads it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from builds import services
from builds.dispatch import reap
from builds.launch import launch_spec
from builds.models import Build, BuildStatus
from builds.services import TransitionError
from conftest import GitRepo
from pipelines.models import Event, Pipeline
from pipelines.services import Creator, create_pipeline, start_event
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml, sha_of

# A diamond with an OR job: `either` runs after whichever of a or b succeeds first,
# `join` only after both did.
WORKFLOW = """
shared:
  image: node:18
jobs:
  main:
    requires: [~commit]
    steps:
      - hello: echo hello
  a:
    requires: [main]
    steps:
      - a: echo a
  b:
    requires: [main]
    annotations:
      screwdriver.cd/timeout: 1.5
    steps:
      - b: echo b
  join:
    requires: [a, b]
    steps:
      - join: echo join
  either:
    requires: [~a, ~b]
    steps:
      - either: echo either
"""

MakeRepo = Callable[..., GitRepo]

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_hook_delivery(settings: Any) -> None:
    # Installed hooks post to SD_API_URL; a closed port keeps pushes from reaching any server.
    settings.SD_API_URL = "http://127.0.0.1:9"


@pytest.fixture
def pipeline(owner: User) -> Pipeline:
    return pipeline_from_yaml(WORKFLOW, owner=owner)


@pytest.fixture
def git_pipeline(make_repo: MakeRepo, owner: User) -> Pipeline:
    """The same pipeline on a real repository, for what reads it: a launch's checkout."""
    return create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": WORKFLOW}).checkout_url, user=owner
    )


def new_event(pipeline: Pipeline, meta: dict[str, Any] | None = None) -> Event:
    if pipeline.last_seen_sha == sha_of(WORKFLOW):
        return event_from_yaml(pipeline, WORKFLOW, meta=meta)
    return start_event(
        pipeline=pipeline, start_from="~commit", creator=Creator("Alice", "alice"), meta=meta
    )


def build_of(event: Event, job: str) -> Build:
    return Build.objects.select_related("job__pipeline", "event").get(event=event, job__name=job)


def statuses(event: Event) -> dict[str, str]:
    return dict(Build.objects.filter(event=event).values_list("job__name", "status"))


def run(build: Build, status: str = BuildStatus.SUCCESS, **kwargs: Any) -> Build:
    """What a launcher reports for a build: RUNNING, then its final status."""
    services.mark_running(build_id=build.pk)
    return services.finish_build(build_id=build.pk, status=status, **kwargs)


def set_status(build: Build, status: str) -> None:
    Build.objects.filter(pk=build.pk).update(status=status)


def event_status(event: Event) -> str:
    return Event.objects.values_list("status", flat=True).get(pk=event.pk)


# --- transitions ----------------------------------------------------------------------------


def test_a_new_event_queues_its_first_job_and_is_in_progress(pipeline: Pipeline) -> None:
    event = new_event(pipeline)

    assert statuses(event) == {"main": BuildStatus.QUEUED}
    assert event_status(event) == Event.Status.IN_PROGRESS


def test_mark_running_moves_a_queued_build_to_running_and_starts_its_lease(
    pipeline: Pipeline,
) -> None:
    build = build_of(new_event(pipeline), "main")

    running = services.mark_running(build_id=build.pk)

    assert running.status == BuildStatus.RUNNING
    assert running.start_time is not None
    assert running.lease_expires_at is not None and running.lease_expires_at > running.start_time


@pytest.mark.parametrize(
    "current",
    [BuildStatus.RUNNING, BuildStatus.CREATED, BuildStatus.SUCCESS, BuildStatus.ABORTED],
)
def test_mark_running_refuses_a_build_that_is_not_queued(pipeline: Pipeline, current: str) -> None:
    build = build_of(new_event(pipeline), "main")
    set_status(build, current)

    with pytest.raises(TransitionError) as error:
        services.mark_running(build_id=build.pk)

    assert error.value.current == current
    assert f"it is {current}" in str(error.value)
    assert Build.objects.get(pk=build.pk).status == current


def test_finish_records_the_final_status_of_a_running_build(pipeline: Pipeline) -> None:
    build = build_of(new_event(pipeline), "main")

    finished = run(build, BuildStatus.FAILURE, message="step hello failed")

    assert finished.status == BuildStatus.FAILURE
    assert finished.end_time is not None
    assert finished.status_message == "step hello failed"
    assert finished.lease_expires_at is None


@pytest.mark.parametrize(
    "current", [BuildStatus.QUEUED, BuildStatus.CREATED, BuildStatus.SUCCESS, BuildStatus.ABORTED]
)
def test_finish_refuses_a_build_that_is_not_running(pipeline: Pipeline, current: str) -> None:
    build = build_of(new_event(pipeline), "main")
    set_status(build, current)

    with pytest.raises(TransitionError):
        services.finish_build(build_id=build.pk, status=BuildStatus.SUCCESS)

    assert Build.objects.get(pk=build.pk).status == current


def test_a_build_cannot_be_finished_twice(pipeline: Pipeline) -> None:
    build = build_of(new_event(pipeline), "main")
    run(build, BuildStatus.SUCCESS)

    with pytest.raises(TransitionError):
        services.finish_build(build_id=build.pk, status=BuildStatus.FAILURE)

    assert Build.objects.get(pk=build.pk).status == BuildStatus.SUCCESS


@pytest.mark.parametrize("status", [BuildStatus.ABORTED, BuildStatus.RUNNING, "DONE"])
def test_finish_refuses_a_status_that_is_not_a_final_one(pipeline: Pipeline, status: str) -> None:
    build = build_of(new_event(pipeline), "main")
    services.mark_running(build_id=build.pk)

    with pytest.raises(ValueError, match="not a final status"):
        services.finish_build(build_id=build.pk, status=status)

    assert Build.objects.get(pk=build.pk).status == BuildStatus.RUNNING


def test_finish_of_a_missing_build_says_it_is_gone() -> None:
    with pytest.raises(TransitionError, match="it is gone"):
        services.finish_build(build_id=987654, status=BuildStatus.SUCCESS)


@pytest.mark.parametrize(
    "current",
    [
        BuildStatus.CREATED,
        BuildStatus.QUEUED,
        BuildStatus.RUNNING,
        BuildStatus.BLOCKED,
        BuildStatus.FROZEN,
    ],
)
def test_abort_stops_an_active_or_waiting_build(pipeline: Pipeline, current: str) -> None:
    event = new_event(pipeline)
    build = build_of(event, "main")
    set_status(build, current)

    aborted = services.abort_build(build_id=build.pk, message="Aborted by alice")

    assert aborted.status == BuildStatus.ABORTED
    # Screwdriver words the abort of a FROZEN build apart from the others.
    frozen = "Frozen build aborted by alice"
    assert aborted.status_message == (
        frozen if current == BuildStatus.FROZEN else "Aborted by alice"
    )
    assert aborted.end_time is not None
    assert event_status(event) == Event.Status.ABORTED


@pytest.mark.parametrize(
    "current", [BuildStatus.SUCCESS, BuildStatus.FAILURE, BuildStatus.ABORTED, BuildStatus.UNSTABLE]
)
def test_abort_refuses_a_finished_build(pipeline: Pipeline, current: str) -> None:
    build = build_of(new_event(pipeline), "main")
    set_status(build, current)

    with pytest.raises(TransitionError):
        services.abort_build(build_id=build.pk, message="too late")

    assert Build.objects.get(pk=build.pk).status == current


# --- the event's status ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build_statuses", "expected"),
    [
        (["RUNNING", "ABORTED", "FAILURE", "SUCCESS"], "IN_PROGRESS"),
        (["QUEUED", "SUCCESS"], "IN_PROGRESS"),
        (["BLOCKED", "FAILURE"], "IN_PROGRESS"),
        (["FROZEN", "SUCCESS"], "IN_PROGRESS"),
        (["ABORTED", "FAILURE", "SUCCESS"], "ABORTED"),
        (["FAILURE", "SUCCESS", "UNSTABLE"], "FAILURE"),
        (["SUCCESS", "UNSTABLE"], "SUCCESS"),
        (["SUCCESS", "CREATED"], "SUCCESS"),
        (["COLLAPSED", "FAILURE"], "FAILURE"),
        (["UNSTABLE"], "SUCCESS"),
    ],
)
def test_the_event_status_is_derived_from_its_builds_as_screwdriver_does(
    pipeline: Pipeline, build_statuses: list[str], expected: str
) -> None:
    event = new_event(pipeline)
    run(build_of(event, "main"))  # queues a and b, and `either` after a
    run(build_of(event, "a"))
    names = ["main", "a", "b", "either"]
    for name, status in zip(names, build_statuses, strict=False):
        set_status(build_of(event, name), status)
    Build.objects.filter(event=event, job__name__in=names[len(build_statuses) :]).delete()
    event.refresh_from_db()

    assert services.refresh_event_status(event=event) == expected
    assert event_status(event) == expected


def test_an_event_whose_builds_all_wait_keeps_its_status(pipeline: Pipeline) -> None:
    event = new_event(pipeline)
    set_status(build_of(event, "main"), BuildStatus.CREATED)
    event.refresh_from_db()

    assert services.refresh_event_status(event=event) == Event.Status.IN_PROGRESS


# --- completion: meta, OR edges and AND joins -----------------------------------------------


def test_meta_is_merged_into_the_event_and_handed_to_the_next_build(
    git_pipeline: Pipeline,
) -> None:
    event = new_event(git_pipeline, meta={"app": {"name": "shop", "version": "0"}, "kept": 1})

    run(build_of(event, "main"), meta={"app": {"version": "1.2.3"}, "release": True})

    event.refresh_from_db()
    assert event.meta == {"app": {"name": "shop", "version": "1.2.3"}, "kept": 1, "release": True}
    spec = launch_spec(build_of(event, "a"))
    assert spec["meta"]["app"] == {"name": "shop", "version": "1.2.3"}
    assert spec["meta"]["release"] is True
    assert spec["meta"]["build"]["jobName"] == "a"


def test_a_join_gets_the_meta_of_both_parents(git_pipeline: Pipeline) -> None:
    event = new_event(git_pipeline)
    run(build_of(event, "main"))
    run(build_of(event, "a"), meta={"from_a": "x", "shared": "a"})
    run(build_of(event, "b"), meta={"from_b": "y", "shared": "b"})

    meta = launch_spec(build_of(event, "join"))["meta"]

    assert meta["from_a"] == "x" and meta["from_b"] == "y"
    assert meta["shared"] == "b"  # the parent that finished last wins, as in the event


def test_a_successful_build_queues_the_jobs_that_require_it(pipeline: Pipeline) -> None:
    event = new_event(pipeline)
    main = run(build_of(event, "main"))

    assert statuses(event) == {"main": "SUCCESS", "a": "QUEUED", "b": "QUEUED"}
    a = build_of(event, "a")
    assert a.parent_build_id == main.pk
    assert a.parent_builds == {str(pipeline.pk): {"eventId": event.pk, "jobs": {"main": main.pk}}}


def test_a_failed_build_queues_nothing(pipeline: Pipeline) -> None:
    event = new_event(pipeline)
    run(build_of(event, "main"), BuildStatus.FAILURE)

    assert statuses(event) == {"main": "FAILURE"}
    assert event_status(event) == Event.Status.FAILURE


def test_an_or_job_runs_once_after_the_first_parent_succeeds(pipeline: Pipeline) -> None:
    event = new_event(pipeline)
    run(build_of(event, "main"))

    run(build_of(event, "a"))
    assert build_of(event, "either").status == BuildStatus.QUEUED
    first = build_of(event, "either").pk

    run(build_of(event, "b"))
    assert Build.objects.filter(event=event, job__name="either").count() == 1
    assert build_of(event, "either").pk == first


def test_a_join_waits_as_created_until_every_parent_succeeded(pipeline: Pipeline) -> None:
    event = new_event(pipeline)
    run(build_of(event, "main"))

    a = run(build_of(event, "a"))
    assert build_of(event, "join").status == BuildStatus.CREATED
    assert event_status(event) == Event.Status.IN_PROGRESS

    b = run(build_of(event, "b"))
    join = build_of(event, "join")
    assert join.status == BuildStatus.QUEUED
    assert join.parent_builds[str(pipeline.pk)]["jobs"] == {"a": a.pk, "b": b.pk}


def test_a_waiting_join_is_deleted_when_its_other_parent_fails(pipeline: Pipeline) -> None:
    event = new_event(pipeline)
    run(build_of(event, "main"))
    run(build_of(event, "a"))
    assert build_of(event, "join").status == BuildStatus.CREATED

    run(build_of(event, "b"), BuildStatus.FAILURE)

    assert statuses(event) == {
        "main": "SUCCESS",
        "a": "SUCCESS",
        "b": "FAILURE",
        "either": "QUEUED",  # the OR job still runs: a succeeded
    }


def test_a_join_is_never_created_when_its_first_parent_fails(pipeline: Pipeline) -> None:
    event = new_event(pipeline)
    run(build_of(event, "main"))
    run(build_of(event, "a"), BuildStatus.FAILURE)

    run(build_of(event, "b"))

    assert not Build.objects.filter(event=event, job__name="join").exists()
    assert build_of(event, "either").status == BuildStatus.QUEUED


def test_a_waiting_join_is_deleted_when_its_other_parent_is_aborted(pipeline: Pipeline) -> None:
    event = new_event(pipeline)
    run(build_of(event, "main"))
    run(build_of(event, "a"))

    services.abort_build(build_id=build_of(event, "b").pk, message="Aborted by alice")

    assert not Build.objects.filter(event=event, job__name="join").exists()


# --- timeouts -------------------------------------------------------------------------------


@pytest.fixture
def timeouts(settings: Any) -> None:
    settings.SD_DEFAULT_TIMEOUT_MINUTES = 90.0
    settings.SD_MAX_TIMEOUT_MINUTES = 120.0


@pytest.mark.usefixtures("timeouts")
@pytest.mark.parametrize(
    ("annotations", "seconds"),
    [
        ({}, 90 * 60),
        ({"screwdriver.cd/timeout": 5}, 5 * 60),
        ({"screwdriver.cd/timeout": "45"}, 45 * 60),
        ({"screwdriver.cd/timeout": 1.5}, 90),
        ({"screwdriver.cd/timeout": "0.25"}, 15),
        ({"screwdriver.cd/timeout": 500}, 120 * 60),
        ({"screwdriver.cd/timeout": 0}, 90 * 60),
        ({"screwdriver.cd/timeout": -3}, 90 * 60),
        ({"screwdriver.cd/timeout": "soon"}, 90 * 60),
        ({"screwdriver.cd/timeout": None}, 90 * 60),
    ],
)
def test_the_timeout_annotation_gives_minutes_with_a_default_and_a_cap(
    annotations: dict[str, Any], seconds: float
) -> None:
    assert services.timeout_seconds_of(annotations) == pytest.approx(seconds)


@pytest.mark.usefixtures("timeouts")
def test_a_build_takes_its_timeout_from_its_job_annotation(pipeline: Pipeline) -> None:
    event = new_event(pipeline)
    run(build_of(event, "main"))

    assert build_of(event, "main").timeout_seconds == 90 * 60
    assert build_of(event, "b").timeout_seconds == 90


# --- the reaper -----------------------------------------------------------------------------


def test_the_reaper_fails_a_running_build_whose_lease_lapsed_and_says_why(
    pipeline: Pipeline, settings: Any
) -> None:
    event = new_event(pipeline)
    build = services.mark_running(build_id=build_of(event, "main").pk)
    assert build.lease_expires_at is not None

    result = reap(now=build.lease_expires_at + timedelta(seconds=1))

    assert result["failed"] == 1
    build.refresh_from_db()
    assert build.status == BuildStatus.FAILURE
    assert "was lost: it stopped reporting" in build.status_message
    assert "the process or the machine running it died" in build.status_message
    assert build.end_time is not None
    assert event_status(event) == Event.Status.FAILURE


def test_the_reaper_fails_a_dispatched_build_whose_launcher_never_started(
    pipeline: Pipeline,
) -> None:
    build = build_of(new_event(pipeline), "main")
    now = timezone.now()
    Build.objects.filter(pk=build.pk).update(
        dispatched_at=now, lease_expires_at=now + services.START_GRACE
    )

    assert reap(now=now + services.START_GRACE + timedelta(seconds=1))["failed"] == 1
    assert Build.objects.get(pk=build.pk).status == BuildStatus.FAILURE


def test_the_reaper_leaves_a_fresh_lease_alone(pipeline: Pipeline) -> None:
    build = services.mark_running(build_id=build_of(new_event(pipeline), "main").pk)
    assert build.lease_expires_at is not None

    result = reap(now=build.lease_expires_at - timedelta(seconds=1))

    assert result == {"failed": 0, "overdue": 0, "requeued": 0, "retried": 0}
    assert Build.objects.get(pk=build.pk).status == BuildStatus.RUNNING


def test_the_reaper_fails_a_build_far_past_its_timeout_even_while_it_heartbeats(
    pipeline: Pipeline,
) -> None:
    build = services.mark_running(build_id=build_of(new_event(pipeline), "main").pk)
    assert build.start_time is not None
    deadline = build.start_time + timedelta(seconds=build.timeout_seconds)
    # A launcher that keeps renewing its lease but never ends its build.
    Build.objects.filter(pk=build.pk).update(lease_expires_at=deadline + timedelta(days=1))

    within_grace = reap(now=deadline + timedelta(seconds=30))
    assert within_grace["overdue"] == 0
    assert Build.objects.get(pk=build.pk).status == BuildStatus.RUNNING

    result = reap(now=deadline + timedelta(minutes=10))

    assert result["overdue"] == 1
    build.refresh_from_db()
    assert build.status == BuildStatus.FAILURE
    assert build.status_message == (
        "Build timed out after 90 minutes and its launcher did not end it."
    )


def test_the_reaper_leaves_finished_builds_alone(pipeline: Pipeline) -> None:
    build = run(build_of(new_event(pipeline), "main"))

    result = reap(now=timezone.now() + timedelta(days=2))

    assert result["failed"] == result["overdue"] == 0
    assert Build.objects.get(pk=build.pk).status == BuildStatus.SUCCESS


def test_the_reaper_requeues_a_queued_build_nobody_picked_up(pipeline: Pipeline) -> None:
    build = build_of(new_event(pipeline), "main")

    result = reap(now=timezone.now() + timedelta(minutes=5))

    assert result["requeued"] == 1
    assert Build.objects.get(pk=build.pk).status == BuildStatus.QUEUED


# --- concurrency ----------------------------------------------------------------------------


def finish_at_once(build_ids: list[int]) -> list[BaseException]:
    """Finish each build from its own thread and connection, all released at the same moment."""
    barrier = threading.Barrier(len(build_ids))
    errors: list[BaseException] = []

    def finish(build_id: int) -> None:
        try:
            barrier.wait(timeout=10)
            services.finish_build(build_id=build_id, status=BuildStatus.SUCCESS)
        except BaseException as exc:  # handed to the test thread, which fails on it
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=finish, args=(pk,)) for pk in build_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a finishing thread hung"
    return errors


# Threads racing on a real transaction, ten times over: `make test` runs it, the unit part not.
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_parents_finishing_at_the_same_moment_queue_exactly_one_join(
    pipeline: Pipeline,
) -> None:
    for attempt in range(10):
        event = new_event(pipeline)
        run(build_of(event, "main"))
        parents = [services.mark_running(build_id=build_of(event, j).pk).pk for j in ("a", "b")]

        errors = finish_at_once(parents)

        assert errors == [], f"attempt {attempt}: {errors!r}"
        joins = list(Build.objects.filter(event=event, job__name="join"))
        assert [j.status for j in joins] == [BuildStatus.QUEUED], f"attempt {attempt}"
        assert set(joins[0].parent_builds[str(pipeline.pk)]["jobs"].values()) == set(parents)
        assert Build.objects.filter(event=event, job__name="either").count() == 1
        # Nothing runs the queued builds; stop them so the next attempt's are not blocked.
        services.stop_event(event=event, message="next attempt")
