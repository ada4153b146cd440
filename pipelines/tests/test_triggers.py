"""Remote triggers (`~sd@ID:job`) and remote joins (`sd@ID:job`) across pipelines.

Two real pipelines on two real git repositories; service tests report what a launcher would,
the slow test runs real builds in both pipelines through the worker and the launcher.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from builds import services
from builds.launch import launch_spec
from builds.models import Build, BuildStatus, OutboxMessage
from conftest import GitRepo, wait_until
from pipelines.models import Event, Job, Pipeline, Trigger
from pipelines.services import (
    Creator,
    create_pipeline,
    set_job_state,
    start_event,
    sync_pipeline,
    triggers,
    update_pipeline,
)

MakeRepo = Callable[..., GitRepo]

UPSTREAM = """
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - main: echo upstream
"""

DOWNSTREAM = """
jobs:
  first:
    image: alpine
    requires: [~commit]
    steps:
      - first: echo first
  other:
    image: alpine
    requires: [~sd@{A}:main]
    steps:
      - other: echo "downstream of $SD_PARENT_BUILD_ID"
"""


@pytest.fixture(autouse=True)
def _no_hook_delivery(settings: Any) -> None:
    # Installed hooks post to SD_API_URL; a closed port keeps pushes from reaching any server.
    settings.SD_API_URL = "http://127.0.0.1:9"


def _user() -> User:
    return User.objects.get_or_create(username="alice")[0]


def pipeline_of(make_repo: MakeRepo, yaml: str, name: str) -> Pipeline:
    repo = make_repo({"screwdriver.yaml": yaml}, name=name)
    return create_pipeline(checkout_url=repo.checkout_url, user=_user())


def pair(make_repo: MakeRepo, downstream: str = DOWNSTREAM) -> tuple[Pipeline, Pipeline]:
    a = pipeline_of(make_repo, UPSTREAM, "upstream")
    b = pipeline_of(make_repo, downstream.replace("{A}", str(a.pk)), "downstream")
    return a, b


def new_event(pipeline: Pipeline, start_from: str = "~commit") -> Event:
    return start_event(pipeline=pipeline, start_from=start_from, creator=Creator("Alice", "alice"))


def build_of(event: Event, job: str) -> Build:
    return Build.objects.select_related("job", "event").get(event=event, job__name=job)


def run(build: Build, status: str = BuildStatus.SUCCESS) -> Build:
    """What a launcher reports for a build: RUNNING, then its final status."""
    services.mark_running(build_id=build.pk)
    return services.finish_build(build_id=build.pk, status=status)


def events_of(pipeline: Pipeline) -> list[Event]:
    return list(Event.objects.filter(pipeline=pipeline).order_by("pk"))


# --- the trigger table ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_remote_requirement_is_kept_in_the_trigger_table_when_jobs_sync(
    make_repo: MakeRepo,
) -> None:
    a, b = pair(make_repo)

    assert list(Trigger.objects.values_list("src", "dest", "pipeline_id")) == [
        (f"~sd@{a.pk}:main", f"~sd@{b.pk}:other", b.pk)
    ]


@pytest.mark.django_db
def test_a_requirement_removed_from_the_file_leaves_the_trigger_table(
    make_repo: MakeRepo,
) -> None:
    a = pipeline_of(make_repo, UPSTREAM, "upstream")
    repo = make_repo({"screwdriver.yaml": DOWNSTREAM.replace("{A}", str(a.pk))}, name="down")
    b = create_pipeline(checkout_url=repo.checkout_url, user=_user())
    repo.push({"screwdriver.yaml": UPSTREAM})

    sync_pipeline(pipeline=b)

    assert not Trigger.objects.exists()


@pytest.mark.django_db
def test_a_pipeline_that_requires_its_own_job_remotely_gets_no_trigger(
    make_repo: MakeRepo,
) -> None:
    repo = make_repo({"screwdriver.yaml": UPSTREAM}, name="self")
    a = create_pipeline(checkout_url=repo.checkout_url, user=_user())
    repo.push({"screwdriver.yaml": DOWNSTREAM.replace("{A}", str(a.pk))})

    sync_pipeline(pipeline=a)

    assert not Trigger.objects.exists()


# --- ~sd@A:main starts pipeline B ----------------------------------------------------------


@pytest.mark.django_db
def test_a_remote_jobs_success_starts_an_event_linked_to_it_in_the_other_pipeline(
    make_repo: MakeRepo,
) -> None:
    a, b = pair(make_repo)
    upstream = build_of(new_event(a), "main")
    run(upstream)

    started = triggers.trigger_remote_jobs(build_id=upstream.pk)

    assert [e.pipeline_id for e in started] == [b.pk]
    event = started[0]
    assert event.start_from == f"~sd@{a.pk}:main"
    assert event.cause_message == f"Triggered by sd@{a.pk}:main"
    assert event.sha == b.last_seen_sha
    assert event.parent_build_id == upstream.pk
    link = {str(a.pk): {"eventId": upstream.event_id, "jobs": {"main": upstream.pk}}}
    assert event.parent_builds == link
    downstream = build_of(event, "other")
    assert (downstream.status, downstream.parent_build_id) == (BuildStatus.QUEUED, upstream.pk)
    assert downstream.parent_builds == link
    assert downstream.cause == f"Triggered by sd@{a.pk}:main"
    assert not Build.objects.filter(event=event, job__name="first").exists()


def queued_tasks() -> list[tuple[str, tuple[Any, ...]]]:
    """The django-q2 tasks waiting in the ORM broker, as (function path, arguments)."""
    from django_q.models import OrmQ

    return [(t.task["func"], tuple(t.task["args"])) for t in OrmQ.objects.order_by("pk")]


def run_queued_remote_triggers() -> None:
    """What a worker does with the outbox tasks in the queue: call their entry point, also
    for the tasks those queue."""
    from builds import tasks

    done = 0
    while len(queued := queued_tasks()) > done:
        for func, args in queued[done:]:
            if func == "builds.tasks.dispatch_outbox":
                tasks.dispatch_outbox(*args)
        done = len(queued)


@pytest.mark.django_db
def test_the_remote_trigger_is_a_worker_task_queued_after_the_finishing_builds_commit(
    make_repo: MakeRepo, django_capture_on_commit_callbacks: Any
) -> None:
    a, b = pair(make_repo)
    upstream = build_of(new_event(a), "main")

    with django_capture_on_commit_callbacks(execute=True):
        run(upstream)

    # The launcher's report only wrote it down: pipeline B's repository is read by a worker.
    assert OutboxMessage.objects.filter(
        build=upstream, handler="remote-triggers", done_at__isnull=True
    ).exists()
    assert "builds.tasks.dispatch_outbox" in {func for func, _ in queued_tasks()}
    assert events_of(b) == []
    run_queued_remote_triggers()
    assert [e.start_from for e in events_of(b)] == [f"~sd@{a.pk}:main"]


@pytest.mark.django_db
def test_the_remote_trigger_task_run_twice_starts_one_event(
    make_repo: MakeRepo, django_capture_on_commit_callbacks: Any
) -> None:
    a, b = pair(make_repo)
    upstream = build_of(new_event(a), "main")
    with django_capture_on_commit_callbacks(execute=True):
        run(upstream)

    run_queued_remote_triggers()
    run_queued_remote_triggers()  # a duplicated nudge finds the row done
    # A handler whose worker died after its effect, run again by the sweep.
    triggers.run_remote_triggers(build_id=upstream.pk)

    assert len(events_of(b)) == 1
    assert Build.objects.filter(job__pipeline=b, job__name="other").count() == 1


@pytest.mark.django_db
def test_a_private_pipeline_does_not_start_a_pipeline_whose_creator_cannot_read_it(
    make_repo: MakeRepo,
) -> None:
    a = pipeline_of(make_repo, UPSTREAM, "upstream")
    Pipeline.objects.filter(pk=a.pk).update(settings={"public": False})
    mallory = User.objects.create(username="mallory")
    repo = make_repo({"screwdriver.yaml": DOWNSTREAM.replace("{A}", str(a.pk))}, name="down")
    b = create_pipeline(checkout_url=repo.checkout_url, user=mallory)
    upstream = run(build_of(new_event(a), "main"))

    assert triggers.trigger_remote_jobs(build_id=upstream.pk) == []
    assert events_of(b) == []


@pytest.mark.django_db
def test_a_remote_parents_meta_reaches_the_build_but_not_in_place_of_its_own_keys(
    make_repo: MakeRepo,
) -> None:
    a, _ = pair(make_repo)
    upstream = build_of(new_event(a), "main")
    services.mark_running(build_id=upstream.pk)
    upstream = services.finish_build(
        build_id=upstream.pk,
        status=BuildStatus.SUCCESS,
        meta={"deploy": {"version": "1.2.3"}, "commit": {"message": "upstream's"}},
    )
    (event,) = triggers.trigger_remote_jobs(build_id=upstream.pk)

    meta = launch_spec(build_of(event, "other"))["meta"]

    assert meta["deploy"] == {"version": "1.2.3"}
    assert meta["commit"]["message"] != "upstream's"
    assert meta["sd"][str(a.pk)]["main"]["commit"] == {"message": "upstream's"}


@pytest.mark.django_db
def test_a_private_parents_meta_never_reaches_a_build_whose_creator_cannot_read_it(
    make_repo: MakeRepo,
) -> None:
    a, b = pair(make_repo)
    upstream = build_of(new_event(a), "main")
    services.mark_running(build_id=upstream.pk)
    upstream = services.finish_build(
        build_id=upstream.pk, status=BuildStatus.SUCCESS, meta={"password": "hunter2"}
    )
    (event,) = triggers.trigger_remote_jobs(build_id=upstream.pk)
    # The upstream turns private, and the downstream changes hands, before the build starts.
    Pipeline.objects.filter(pk=a.pk).update(settings={"public": False})
    Pipeline.objects.filter(pk=b.pk).update(creator=User.objects.create(username="mallory"))

    spec = launch_spec(build_of(event, "other"))

    assert "hunter2" not in json.dumps(spec)


@pytest.mark.django_db
def test_a_remote_job_that_failed_starts_nothing(make_repo: MakeRepo) -> None:
    a, b = pair(make_repo)
    upstream = build_of(new_event(a), "main")
    run(upstream, BuildStatus.FAILURE)

    assert triggers.trigger_remote_jobs(build_id=upstream.pk) == []
    assert events_of(b) == []


@pytest.mark.django_db
def test_a_second_report_of_the_same_build_starts_no_second_event(make_repo: MakeRepo) -> None:
    a, b = pair(make_repo)
    upstream = build_of(new_event(a), "main")
    run(upstream)

    triggers.trigger_remote_jobs(build_id=upstream.pk)
    triggers.trigger_remote_jobs(build_id=upstream.pk)

    assert len(events_of(b)) == 1


@pytest.mark.django_db
def test_the_database_refuses_a_second_start_of_a_pipeline_by_one_job_run(
    make_repo: MakeRepo,
) -> None:
    from django.db import IntegrityError, transaction

    from builds.models import RemoteStart

    a, b = pair(make_repo)
    upstream = run(build_of(new_event(a), "main"))
    triggers.trigger_remote_jobs(build_id=upstream.pk)

    with pytest.raises(IntegrityError), transaction.atomic():
        RemoteStart.objects.create(
            source_event_id=upstream.event_id, source_job_id=upstream.job_id, pipeline=b
        )


MATRIX_UPSTREAM = UPSTREAM.replace("    steps:", "    matrix:\n      NODE: [18, 20]\n    steps:")


@pytest.mark.django_db
def test_every_permutation_of_a_matrix_job_reporting_starts_one_remote_event(
    make_repo: MakeRepo,
) -> None:
    a = pipeline_of(make_repo, MATRIX_UPSTREAM, "matrix")
    b = pipeline_of(make_repo, DOWNSTREAM.replace("{A}", str(a.pk)), "downstream")
    event = new_event(a)
    permutations = list(Build.objects.filter(event=event).order_by("permutation"))
    assert len(permutations) == 2
    for build in permutations:
        run(build)

    for build in permutations:
        triggers.trigger_remote_jobs(build_id=build.pk)

    assert len(events_of(b)) == 1


@pytest.mark.django_db
def test_an_inactive_remote_pipeline_is_skipped(make_repo: MakeRepo) -> None:
    a, b = pair(make_repo)
    update_pipeline(pipeline=b, state=Pipeline.State.INACTIVE, changer="alice")
    upstream = build_of(new_event(a), "main")
    run(upstream)

    assert triggers.trigger_remote_jobs(build_id=upstream.pk) == []
    assert events_of(b) == []


@pytest.mark.django_db
def test_a_disabled_remote_job_is_skipped(make_repo: MakeRepo) -> None:
    a, b = pair(make_repo)
    set_job_state(
        job=Job.objects.get(pipeline=b, name="other"), state="DISABLED", message="", changer="x"
    )
    upstream = build_of(new_event(a), "main")
    run(upstream)

    assert triggers.trigger_remote_jobs(build_id=upstream.pk) == []
    assert events_of(b) == []


@pytest.mark.django_db
def test_two_pipelines_that_trigger_each_other_stop_after_one_round(make_repo: MakeRepo) -> None:
    a_repo = make_repo({"screwdriver.yaml": UPSTREAM}, name="ping")
    a = create_pipeline(checkout_url=a_repo.checkout_url, user=_user())
    b = pipeline_of(make_repo, DOWNSTREAM.replace("{A}", str(a.pk)), "pong")
    # A's main also runs after B's other: a loop of remote triggers.
    a_repo.push({"screwdriver.yaml": UPSTREAM.replace("[~commit]", f"[~commit, ~sd@{b.pk}:other]")})
    sync_pipeline(pipeline=a)
    upstream = build_of(new_event(a), "main")
    run(upstream)
    (b_event,) = triggers.trigger_remote_jobs(build_id=upstream.pk)
    other = run(build_of(b_event, "other"))

    assert triggers.trigger_remote_jobs(build_id=other.pk) == []
    assert len(events_of(a)) == 1


@pytest.mark.django_db
def test_skip_further_in_the_upstream_event_starts_no_remote_event(make_repo: MakeRepo) -> None:
    a, b = pair(make_repo)
    event = start_event(
        pipeline=a,
        start_from="~commit",
        creator=Creator("Alice", "alice"),
        cause_message="hotfix [skip further]",
    )
    upstream = run(build_of(event, "main"))

    assert triggers.trigger_remote_jobs(build_id=upstream.pk) == []
    assert events_of(b) == []


# --- sd@A:main: a remote join --------------------------------------------------------------

JOIN_IN_TRIGGERED_EVENT = """
jobs:
  other:
    image: alpine
    requires: [~sd@{A}:main]
    steps:
      - other: echo other
  both:
    image: alpine
    requires: [other, sd@{A}:main]
    steps:
      - both: echo both
"""

JOIN_WAITING = """
jobs:
  first:
    image: alpine
    requires: [~commit]
    steps:
      - first: echo first
  both:
    image: alpine
    requires: [first, sd@{A}:main]
    steps:
      - both: echo both
"""


@pytest.mark.django_db
def test_a_remote_join_in_the_event_the_remote_job_started_counts_that_job(
    make_repo: MakeRepo,
) -> None:
    a, b = pair(make_repo, JOIN_IN_TRIGGERED_EVENT)
    upstream = run(build_of(new_event(a), "main"))
    (event,) = triggers.trigger_remote_jobs(build_id=upstream.pk)

    other = run(build_of(event, "other"))

    both = build_of(event, "both")
    assert both.status == BuildStatus.QUEUED
    assert both.parent_builds == {
        str(b.pk): {"eventId": event.pk, "jobs": {"other": other.pk}},
        str(a.pk): {"eventId": upstream.event_id, "jobs": {"main": upstream.pk}},
    }


@pytest.mark.django_db
def test_a_remote_join_waits_for_the_remote_job_then_runs_in_the_waiting_event(
    make_repo: MakeRepo,
) -> None:
    a, b = pair(make_repo, JOIN_WAITING)
    event = new_event(b)
    run(build_of(event, "first"))
    assert build_of(event, "both").status == BuildStatus.CREATED

    upstream = run(build_of(new_event(a), "main"))
    started = triggers.trigger_remote_jobs(build_id=upstream.pk)

    assert started == []  # a join alone starts no event of its own
    both = build_of(event, "both")
    assert (both.status, both.parent_build_id) == (BuildStatus.QUEUED, upstream.pk)
    event.refresh_from_db()
    assert event.parent_builds[str(a.pk)]["jobs"] == {"main": upstream.pk}


@pytest.mark.django_db
def test_a_remote_join_whose_remote_job_failed_is_dropped(make_repo: MakeRepo) -> None:
    a, b = pair(make_repo, JOIN_WAITING)
    event = new_event(b)
    run(build_of(event, "first"))

    upstream = run(build_of(new_event(a), "main"), BuildStatus.FAILURE)
    triggers.trigger_remote_jobs(build_id=upstream.pk)

    assert not Build.objects.filter(event=event, job__name="both").exists()
    event.refresh_from_db()
    assert event.status == Event.Status.SUCCESS


@pytest.mark.django_db
def test_a_remote_job_with_no_waiting_join_changes_nothing(make_repo: MakeRepo) -> None:
    a, b = pair(make_repo, JOIN_WAITING)
    event = new_event(b)  # first has not finished: no join build waits yet

    upstream = run(build_of(new_event(a), "main"))
    triggers.trigger_remote_jobs(build_id=upstream.pk)

    assert not Build.objects.filter(event=event, job__name="both").exists()
    assert len(events_of(b)) == 1


# --- remote blockedBy ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_build_blocked_by_a_remote_job_waits_while_that_job_runs(make_repo: MakeRepo) -> None:
    a = pipeline_of(make_repo, UPSTREAM, "upstream")
    blocked = UPSTREAM.replace("    steps:", f"    blockedBy: [~sd@{a.pk}:main]\n    steps:")
    b = pipeline_of(make_repo, blocked, "blocked")
    upstream = build_of(new_event(a), "main")
    services.mark_running(build_id=upstream.pk)

    waiting = build_of(new_event(b), "main")
    assert waiting.status == BuildStatus.BLOCKED

    services.finish_build(build_id=upstream.pk, status=BuildStatus.SUCCESS)
    services.release_remotely_blocked(build_id=upstream.pk)

    waiting.refresh_from_db()
    assert waiting.status == BuildStatus.QUEUED


# --- real builds ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_remote_success_starts_the_other_pipelines_job_and_it_really_runs(
    stack: Any, make_repo: MakeRepo
) -> None:
    from builds.logs import read_page
    from builds.models import Step

    a, b = pair(make_repo)
    upstream_event = new_event(a)

    def downstream_done() -> Build | None:
        found = Build.objects.filter(job__pipeline=b, job__name="other").first()
        return found if found is not None and found.is_finished else None

    downstream = wait_until(downstream_done, timeout=120, what="pipeline B's job to run")

    upstream = build_of(upstream_event, "main")
    assert upstream.status == BuildStatus.SUCCESS
    assert downstream.status == BuildStatus.SUCCESS
    assert downstream.parent_build_id == upstream.pk
    assert downstream.event.parent_build_id == upstream.pk
    assert downstream.event.cause_message == f"Triggered by sd@{a.pk}:main"
    lines = read_page(step=Step.objects.get(build=downstream, name="other"), pages=10).lines
    assert [line["m"] for line in lines] == [f"downstream of {upstream.pk}"]


META_UPSTREAM = """
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - publish: meta set deploy.version 1.2.3
"""

META_DOWNSTREAM = """
jobs:
  other:
    image: alpine
    requires: [~sd@{A}:main]
    steps:
      - external: meta get --external sd@{A}:main deploy.version
      - kept: meta get sd.{A}.main.deploy.version
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_meta_set_upstream_is_read_downstream_across_a_remote_trigger(
    stack: Any, make_repo: MakeRepo
) -> None:
    from builds.logs import read_page
    from builds.models import Step

    a = pipeline_of(make_repo, META_UPSTREAM, "publisher")
    b = pipeline_of(make_repo, META_DOWNSTREAM.replace("{A}", str(a.pk)), "reader")
    new_event(a)

    def downstream_done() -> Build | None:
        found = Build.objects.filter(job__pipeline=b, job__name="other").first()
        return found if found is not None and found.is_finished else None

    downstream = wait_until(downstream_done, timeout=120, what="pipeline B's job to run")

    assert downstream.status == BuildStatus.SUCCESS

    def printed(step: str) -> list[str]:
        lines = read_page(step=Step.objects.get(build=downstream, name=step), pages=10).lines
        return [line["m"] for line in lines]

    assert printed("external") == ["1.2.3"]
    assert printed("kept") == ["1.2.3"]
    assert downstream.meta["sd"][str(a.pk)]["main"]["deploy"] == {"version": "1.2.3"}
