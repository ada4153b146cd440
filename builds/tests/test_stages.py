"""Stages: the stage record, the stage build, teardown after a failure, downstream on success.

Service tests report what a launcher would (`mark_running`, `finish_build`) on pipelines made
from a screwdriver.yaml's text by the real services, without git (`pipelines.tests.factories`).
What reads the repository runs on a real git repository: a sync after a push, and the slow
test, which runs real builds through the worker and the launcher.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from builds import services
from builds.models import Build, BuildStatus, StageBuild
from conftest import GitRepo, verdicts, wait_until
from pipelines.models import Event, Job, Pipeline, Stage
from pipelines.services import Creator, create_pipeline, start_event, sync_pipeline
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml

MakeRepo = Callable[..., GitRepo]

STAGED = """
shared:
  image: alpine
jobs:
  main:
    requires: [~commit]
    steps:
      - main: echo main
  ci-deploy:
    steps:
      - deploy: echo deploy
  ci-test:
    requires: [ci-deploy]
    steps:
      - test: {test}
  ci-lint:
    requires: [ci-deploy]
    steps:
      - lint: echo lint
  after:
    requires: [~stage@canary]
    steps:
      - after: echo after
stages:
  canary:
    requires: [main]
    jobs: [ci-deploy, ci-test, ci-lint]
    description: Deploys to canary
    teardown:
      steps:
        - clean: echo "teardown ran"
"""


def staged(test: str = "echo test") -> str:
    return STAGED.replace("{test}", test)


@pytest.fixture(autouse=True)
def _no_hook_delivery(settings: Any) -> None:
    # Installed hooks post to SD_API_URL; a closed port keeps pushes from reaching any server.
    settings.SD_API_URL = "http://127.0.0.1:9"


def pipeline_of(yaml: str) -> Pipeline:
    """A pipeline whose branch head holds `yaml`, made without git."""
    return pipeline_from_yaml(yaml, owner=User.objects.get_or_create(username="alice")[0])


def new_event(pipeline: Pipeline, yaml: str) -> Event:
    """An event at the commit of `pipeline_of(yaml)`'s head, started without git."""
    return event_from_yaml(pipeline, yaml, creator=Creator("Alice", "alice"))


def git_pipeline_of(make_repo: MakeRepo, yaml: str) -> Pipeline:
    """The pipeline on a real repository, for what reads it: a launcher's checkout."""
    user = User.objects.get_or_create(username="alice")[0]
    return create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": yaml}).checkout_url, user=user
    )


def git_event(pipeline: Pipeline) -> Event:
    """An event at the head of the pipeline's repository, read through the SCM."""
    return start_event(pipeline=pipeline, start_from="~commit", creator=Creator("Alice", "alice"))


def build_of(event: Event, job: str) -> Build:
    return Build.objects.select_related("job", "event").get(event=event, job__name=job)


def statuses(event: Event) -> dict[str, str]:
    return dict(Build.objects.filter(event=event).values_list("job__name", "status"))


def run(build: Build, status: str = BuildStatus.SUCCESS) -> Build:
    """What a launcher reports for a build: RUNNING, then its final status."""
    services.mark_running(build_id=build.pk)
    return services.finish_build(build_id=build.pk, status=status)


def stage_build(event: Event) -> StageBuild:
    return StageBuild.objects.get(event=event, stage__name="canary")


# --- the stage record ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_stage_record_names_its_jobs_setup_and_teardown() -> None:
    pipeline = pipeline_of(staged())
    jobs = dict(Job.objects.filter(pipeline=pipeline).values_list("name", "pk"))

    stage = Stage.objects.get(pipeline=pipeline)

    assert (stage.name, stage.description, stage.archived) == (
        "canary",
        "Deploys to canary",
        False,
    )
    assert stage.job_ids == [jobs["ci-deploy"], jobs["ci-test"], jobs["ci-lint"]]
    assert (stage.setup_id, stage.teardown_id) == (
        jobs["stage@canary:setup"],
        jobs["stage@canary:teardown"],
    )


@pytest.mark.django_db
def test_a_stage_dropped_from_the_file_is_archived_and_comes_back_when_restored(
    make_repo: MakeRepo,
) -> None:
    repo = make_repo({"screwdriver.yaml": staged()})
    pipeline = create_pipeline(
        checkout_url=repo.checkout_url, user=User.objects.create_user(username="alice")
    )
    repo.push({"screwdriver.yaml": "jobs:\n  main:\n    image: alpine\n    steps:\n      - a: a\n"})

    sync_pipeline(pipeline=pipeline)
    assert Stage.objects.get(pipeline=pipeline).archived is True

    repo.push({"screwdriver.yaml": staged()})
    sync_pipeline(pipeline=pipeline)
    assert Stage.objects.get(pipeline=pipeline).archived is False


# --- the stage build -----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_stage_build_starts_with_the_stage_and_succeeds_with_its_teardown() -> None:
    yaml = staged()
    event = new_event(pipeline_of(yaml), yaml)
    assert not StageBuild.objects.filter(event=event).exists()

    run(build_of(event, "main"))  # the virtual setup succeeds at once, ci-deploy is queued
    assert stage_build(event).status == BuildStatus.RUNNING
    assert {n["name"] for n in stage_build(event).workflow_graph["nodes"]} == {
        "stage@canary:setup",
        "ci-deploy",
        "ci-test",
        "ci-lint",
        "stage@canary:teardown",
    }
    run(build_of(event, "ci-deploy"))
    run(build_of(event, "ci-test"))
    run(build_of(event, "ci-lint"))
    run(build_of(event, "stage@canary:teardown"))

    assert stage_build(event).status == BuildStatus.SUCCESS
    assert build_of(event, "after").status == BuildStatus.QUEUED


@pytest.mark.django_db
def test_a_failed_stage_job_runs_the_teardown_once_the_other_stage_jobs_end() -> None:
    yaml = staged()
    event = new_event(pipeline_of(yaml), yaml)
    run(build_of(event, "main"))
    run(build_of(event, "ci-deploy"))

    run(build_of(event, "ci-test"), BuildStatus.FAILURE)
    # ci-lint still runs: the teardown waits for it, and the stage has failed already.
    assert "stage@canary:teardown" not in statuses(event)
    assert stage_build(event).status == BuildStatus.FAILURE
    run(build_of(event, "ci-lint"))

    teardown = build_of(event, "stage@canary:teardown")
    assert teardown.status == BuildStatus.QUEUED
    assert teardown.cause == "Teardown of stage canary: ci-test did not succeed"
    assert teardown.parent_build_id == build_of(event, "ci-test").pk


@pytest.mark.django_db
def test_after_a_failed_stage_the_teardown_runs_but_what_follows_the_stage_does_not() -> None:
    yaml = staged()
    event = new_event(pipeline_of(yaml), yaml)
    run(build_of(event, "main"))
    run(build_of(event, "ci-deploy"))
    run(build_of(event, "ci-lint"))
    run(build_of(event, "ci-test"), BuildStatus.FAILURE)

    run(build_of(event, "stage@canary:teardown"))

    assert "after" not in statuses(event)
    assert stage_build(event).status == BuildStatus.FAILURE
    event.refresh_from_db()
    assert event.status == Event.Status.FAILURE


@pytest.mark.django_db
def test_a_failing_teardown_fails_the_stage_and_nothing_follows() -> None:
    yaml = staged()
    event = new_event(pipeline_of(yaml), yaml)
    for name in ["main", "ci-deploy", "ci-test", "ci-lint"]:
        run(build_of(event, name))

    run(build_of(event, "stage@canary:teardown"), BuildStatus.FAILURE)

    assert stage_build(event).status == BuildStatus.FAILURE
    assert "after" not in statuses(event)


@pytest.mark.django_db
def test_an_aborted_stage_job_also_gets_the_teardown() -> None:
    yaml = staged()
    event = new_event(pipeline_of(yaml), yaml)
    run(build_of(event, "main"))

    services.abort_build(build_id=build_of(event, "ci-deploy").pk, message="stop")

    # ci-test and ci-lint never start; nothing of the stage runs, so the teardown does.
    assert statuses(event)["stage@canary:teardown"] == BuildStatus.QUEUED
    assert stage_build(event).status == BuildStatus.FAILURE


@pytest.mark.django_db
def test_a_stage_whose_job_collapsed_into_a_newer_event_still_gets_its_teardown() -> None:
    yaml = staged()
    pipeline = pipeline_of(yaml)
    first = new_event(pipeline, yaml)
    run(build_of(first, "main"))
    services.mark_running(build_id=build_of(first, "ci-deploy").pk)
    # ci-deploy blocks itself: the second and third events' builds wait, the older collapses.
    second = new_event(pipeline, yaml)
    run(build_of(second, "main"))
    assert build_of(second, "ci-deploy").status == BuildStatus.BLOCKED
    third = new_event(pipeline, yaml)

    run(build_of(third, "main"))

    assert build_of(second, "ci-deploy").status == BuildStatus.COLLAPSED
    teardown = build_of(second, "stage@canary:teardown")
    assert teardown.status == BuildStatus.QUEUED
    assert teardown.cause == "Teardown of stage canary: ci-deploy did not succeed"
    assert stage_build(second).status == BuildStatus.FAILURE
    assert build_of(third, "ci-deploy").status == BuildStatus.BLOCKED


@pytest.mark.django_db
def test_a_stage_whose_frozen_job_collapsed_into_a_newer_event_still_gets_its_teardown() -> None:
    frozen = staged().replace(
        "  ci-deploy:\n", '  ci-deploy:\n    freezeWindows: ["* 10-21 ? * *"]\n'
    )
    pipeline = pipeline_of(frozen)
    with time_machine.travel(datetime(2026, 1, 7, 12, tzinfo=UTC), tick=False):
        first = new_event(pipeline, frozen)
        run(build_of(first, "main"))
        assert build_of(first, "ci-deploy").status == BuildStatus.FROZEN
        second = new_event(pipeline, frozen)

        run(build_of(second, "main"))

    assert build_of(first, "ci-deploy").status == BuildStatus.COLLAPSED
    assert build_of(first, "stage@canary:teardown").status == BuildStatus.QUEUED
    assert stage_build(first).status == BuildStatus.FAILURE
    assert build_of(second, "ci-deploy").status == BuildStatus.FROZEN


@pytest.mark.django_db
def test_a_virtual_teardown_after_a_failure_succeeds_and_still_stops_what_follows() -> None:
    yaml = staged().replace(
        '    teardown:\n      steps:\n        - clean: echo "teardown ran"\n', ""
    )
    event = new_event(pipeline_of(yaml), yaml)
    run(build_of(event, "main"))

    run(build_of(event, "ci-deploy"), BuildStatus.FAILURE)

    assert build_of(event, "stage@canary:teardown").status == BuildStatus.SUCCESS
    assert "after" not in statuses(event)
    assert stage_build(event).status == BuildStatus.FAILURE


# --- the API -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_lists_a_pipelines_stages_and_an_events_stage_builds() -> None:
    yaml = staged()
    pipeline = pipeline_of(yaml)
    event = new_event(pipeline, yaml)
    run(build_of(event, "main"))
    client = APIClient()
    client.force_authenticate(User.objects.get(username="alice"))

    stages = client.get(f"/v4/pipelines/{pipeline.pk}/stages").json()
    stage_builds = client.get(f"/v4/events/{event.pk}/stageBuilds").json()

    stage = Stage.objects.get(pipeline=pipeline)
    assert stages == [
        {
            "id": stage.pk,
            "pipelineId": pipeline.pk,
            "name": "canary",
            "jobIds": stage.job_ids,
            "description": "Deploys to canary",
            "setup": stage.setup_id,
            "teardown": stage.teardown_id,
            "archived": False,
        }
    ]
    assert stage_builds == [
        {
            "id": stage_build(event).pk,
            "stageId": stage.pk,
            "eventId": event.pk,
            "status": "RUNNING",
        }
    ]


@pytest.mark.oracle
@pytest.mark.django_db
def test_stages_and_stage_builds_pass_screwdrivers_get_models(data_schema: Path) -> None:
    yaml = staged()
    pipeline = pipeline_of(yaml)
    event = new_event(pipeline, yaml)
    run(build_of(event, "main"))
    client = APIClient()
    client.force_authenticate(User.objects.get(username="alice"))
    items: list[tuple[str, Any]] = [
        *[("stage", x) for x in client.get(f"/v4/pipelines/{pipeline.pk}/stages").json()],
        *[("stageBuild", x) for x in client.get(f"/v4/events/{event.pk}/stageBuilds").json()],
    ]

    assert len(items) == 2
    assert verdicts(data_schema, items) == [None, None]


# --- real builds ---------------------------------------------------------------------------


def _done(event: Event) -> Event | None:
    event.refresh_from_db()
    active = Build.objects.filter(event=event, status__in=["QUEUED", "RUNNING", "CREATED"]).exists()
    return event if not active and event.status != Event.Status.IN_PROGRESS else None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_failing_stage_job_is_followed_by_the_teardown_and_not_by_what_follows_the_stage(
    stack: Any, make_repo: MakeRepo
) -> None:
    from builds.logs import read_page
    from builds.models import Step

    pipeline = git_pipeline_of(make_repo, staged(test='echo "tests failed" && exit 3'))
    event = git_event(pipeline)

    done = wait_until(lambda: _done(event), timeout=120, what="the staged event to finish")

    assert done.status == Event.Status.FAILURE
    assert statuses(event) == {
        "main": BuildStatus.SUCCESS,
        "stage@canary:setup": BuildStatus.SUCCESS,
        "ci-deploy": BuildStatus.SUCCESS,
        "ci-test": BuildStatus.FAILURE,
        "ci-lint": BuildStatus.SUCCESS,
        "stage@canary:teardown": BuildStatus.SUCCESS,
    }
    teardown = build_of(event, "stage@canary:teardown")
    failed = build_of(event, "ci-test")
    assert teardown.start_time is not None and failed.end_time is not None
    assert teardown.start_time >= failed.end_time
    lines = read_page(step=Step.objects.get(build=teardown, name="clean"), pages=10).lines
    assert [line["m"] for line in lines] == ["teardown ran"]
    assert stage_build(event).status == BuildStatus.FAILURE


VIRTUAL_IN_STAGE = """
shared:
  image: alpine
jobs:
  main:
    requires: [~commit]
    steps:
      - main: echo main
  ci-deploy:
    steps:
      - deploy: echo deploy
  ci-a:
    requires: [ci-deploy]
    steps:
      - a: echo a
  ci-b:
    requires: [ci-deploy]
    steps:
      - b: exit 1
  ci-gate:
    requires: [ci-a]
    annotations:
      screwdriver.cd/virtualJob: true
    steps:
      - never: echo never
  ci-c:
    requires: [ci-gate]
    steps:
      - c: echo c
stages:
  canary:
    requires: [main]
    jobs: [ci-deploy, ci-a, ci-b, ci-gate, ci-c]
    teardown:
      steps:
        - clean: echo clean
"""


@pytest.mark.django_db
def test_a_failed_stages_teardown_waits_for_the_job_a_virtual_job_starts_in_it() -> None:
    event = new_event(pipeline_of(VIRTUAL_IN_STAGE), VIRTUAL_IN_STAGE)
    run(build_of(event, "main"))
    run(build_of(event, "ci-deploy"))
    run(build_of(event, "ci-b"), BuildStatus.FAILURE)

    # ci-a's end settles the virtual ci-gate, which starts ci-c, before the stage is looked
    # at: ci-c still runs, so the teardown waits for it.
    run(build_of(event, "ci-a"))
    assert statuses(event)["ci-gate"] == BuildStatus.SUCCESS
    assert statuses(event)["ci-c"] == BuildStatus.QUEUED
    assert "stage@canary:teardown" not in statuses(event)

    run(build_of(event, "ci-c"))
    assert statuses(event)["stage@canary:teardown"] == BuildStatus.QUEUED
