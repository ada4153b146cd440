"""Screwdriver's workflow semantics in the completion service: matrix, parameters, virtual jobs.

Builds come from pipelines made from a screwdriver.yaml's text by the real services, without
git (`pipelines.tests.factories`); what reads the repository (a launch spec, a restart, the
events API, a pushed commit) runs on a real git repository. Nothing runs the builds: the tests
report what a launcher would (`mark_running`, `finish_build`) and look at what was queued.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from builds import services
from builds.launch import launch_spec
from builds.models import Build, BuildStatus
from conftest import GitRepo
from pipelines.models import Event, Pipeline
from pipelines.services import Creator, create_pipeline, start_event
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml

MakeRepo = Callable[..., GitRepo]

pytestmark = pytest.mark.django_db

MATRIX = """
shared:
  image: alpine
jobs:
  test:
    image: node:{{NODE}}
    requires: [~commit]
    environment:
      GREETING: hi
    matrix:
      NODE: [18, 20, 22]
    steps:
      - test: echo "$NODE"
  after:
    requires: [~test]
    steps:
      - after: echo after
  other:
    requires: [~commit]
    steps:
      - other: echo other
  join:
    requires: [test, other]
    steps:
      - join: echo join
"""


@pytest.fixture(autouse=True)
def _no_hook_delivery(settings: Any) -> None:
    # Installed hooks post to SD_API_URL; a closed port keeps pushes from reaching any server.
    settings.SD_API_URL = "http://127.0.0.1:9"


def pipeline_of(yaml: str) -> Pipeline:
    """A pipeline whose branch head holds `yaml`, made without git."""
    return pipeline_from_yaml(yaml, owner=User.objects.create_user(username="alice"))


def new_event(pipeline: Pipeline, yaml: str, **kwargs: Any) -> Event:
    """An event at the commit of `pipeline_of(yaml)`'s head, started without git."""
    return event_from_yaml(pipeline, yaml, creator=Creator("Alice", "alice"), **kwargs)


def git_pipeline_of(make_repo: MakeRepo, yaml: str) -> Pipeline:
    """The pipeline on a real repository, for what reads it: launch specs, restarts, the API."""
    user = User.objects.create_user(username="alice")
    return create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": yaml}).checkout_url, user=user
    )


def git_event(pipeline: Pipeline, **kwargs: Any) -> Event:
    """An event at the head of the pipeline's repository, read through the SCM."""
    return start_event(
        pipeline=pipeline, start_from="~commit", creator=Creator("Alice", "alice"), **kwargs
    )


def builds_of(event: Event, job: str) -> list[Build]:
    return list(
        Build.objects.select_related("job__pipeline", "event")
        .filter(event=event, job__name=job)
        .order_by("permutation")
    )


def run(build: Build, status: str = BuildStatus.SUCCESS) -> Build:
    """What a launcher reports for a build: RUNNING, then its final status."""
    services.mark_running(build_id=build.pk)
    return services.finish_build(build_id=build.pk, status=status)


# --- matrix ---------------------------------------------------------------------------------


def test_every_matrix_permutation_is_its_own_build_with_its_environment_and_image(
    make_repo: MakeRepo,
) -> None:
    event = git_event(git_pipeline_of(make_repo, MATRIX))

    tests = builds_of(event, "test")

    assert [b.permutation for b in tests] == [0, 1, 2]
    assert [b.container for b in tests] == ["node:18", "node:20", "node:22"]
    assert [b.environment["NODE"] for b in tests] == ["18", "20", "22"]
    assert all(b.status == BuildStatus.QUEUED for b in tests)
    env = dict(launch_spec(tests[2])["environment"])
    assert (env["NODE"], env["GREETING"]) == ("22", "hi")


def test_a_job_after_a_matrix_job_waits_for_every_permutation_and_runs_once() -> None:
    event = new_event(pipeline_of(MATRIX), MATRIX)
    first, second, third = builds_of(event, "test")

    run(first)
    run(third)
    assert builds_of(event, "after") == []
    run(second)

    after = builds_of(event, "after")
    assert [(b.permutation, b.status) for b in after] == [(0, BuildStatus.QUEUED)]


def test_a_join_waits_for_every_permutation_of_its_matrix_parent() -> None:
    event = new_event(pipeline_of(MATRIX), MATRIX)
    first, second, third = builds_of(event, "test")
    run(builds_of(event, "other")[0])
    run(first)
    run(second)

    assert [b.status for b in builds_of(event, "join")] == [BuildStatus.CREATED]
    run(third)

    assert [b.status for b in builds_of(event, "join")] == [BuildStatus.QUEUED]


def test_one_failed_permutation_stops_what_follows_the_matrix_job() -> None:
    event = new_event(pipeline_of(MATRIX), MATRIX)
    first, second, third = builds_of(event, "test")
    run(builds_of(event, "other")[0])
    run(first)
    run(second, BuildStatus.FAILURE)
    run(third)

    assert builds_of(event, "after") == []
    assert builds_of(event, "join") == []
    assert Event.objects.get(pk=event.pk).status == Event.Status.FAILURE


def test_a_job_that_requires_a_matrix_job_runs_every_one_of_its_own_permutations() -> None:
    yaml = """
jobs:
  main:
    image: node:20
    requires: [~commit]
    steps:
      - main: echo main
  fan:
    image: alpine
    requires: [main]
    matrix:
      OS: [a, b]
    steps:
      - fan: echo "$OS"
"""
    event = new_event(pipeline_of(yaml), yaml)
    run(builds_of(event, "main")[0])

    fan = builds_of(event, "fan")
    assert [(b.permutation, b.environment["OS"], b.status) for b in fan] == [
        (0, "a", BuildStatus.QUEUED),
        (1, "b", BuildStatus.QUEUED),
    ]


# --- parameters -----------------------------------------------------------------------------

PARAMETERS = """
parameters:
  region: us-west-1
  color:
    value: [red, blue]
    description: which color
jobs:
  main:
    image: alpine
    requires: [~commit]
    parameters:
      size: small
    steps:
      - main: meta get parameters.region.value
  next:
    image: alpine
    requires: [main]
    steps:
      - next: echo next
"""


def test_parameters_chosen_at_start_are_recorded_in_the_event_meta() -> None:
    event = new_event(
        pipeline_of(PARAMETERS),
        PARAMETERS,
        meta={"parameters": {"region": {"value": "eu-north-1"}, "main": {"size": "large"}}},
    )

    assert event.meta["parameters"] == {
        "region": {"value": "eu-north-1", "default": "us-west-1"},
        "color": {"value": "red", "default": ["red", "blue"]},
        "main": {"size": {"value": "large", "default": "small"}},
    }


def test_a_build_reads_its_pipeline_and_its_own_job_parameters(make_repo: MakeRepo) -> None:
    event = git_event(
        git_pipeline_of(make_repo, PARAMETERS), meta={"parameters": {"color": {"value": "blue"}}}
    )

    meta = launch_spec(builds_of(event, "main")[0])["meta"]

    assert meta["parameters"]["color"]["value"] == "blue"
    assert meta["parameters"]["size"]["value"] == "small"
    assert meta["parameters"]["main"]["size"]["value"] == "small"


def test_a_restart_inherits_the_parameters_and_may_change_them(make_repo: MakeRepo) -> None:
    from pipelines.services import restart_event

    pipeline = git_pipeline_of(make_repo, PARAMETERS)
    first = git_event(pipeline, meta={"parameters": {"region": "ap-south-1"}})

    same = restart_event(parent_event=first, start_from="main", creator=Creator("A", "alice"))
    changed = restart_event(
        parent_event=first,
        start_from="main",
        creator=Creator("A", "alice"),
        meta={"parameters": {"color": {"value": "blue"}}},
    )

    assert same.meta["parameters"] == first.meta["parameters"]
    assert same.meta["parameters"]["region"]["value"] == "ap-south-1"
    assert changed.meta["parameters"]["region"]["value"] == "ap-south-1"
    assert changed.meta["parameters"]["color"] == {"value": "blue", "default": ["red", "blue"]}


def test_the_api_takes_parameters_in_meta_or_at_the_top_level(make_repo: MakeRepo) -> None:
    from rest_framework.test import APIClient

    pipeline = git_pipeline_of(make_repo, PARAMETERS)
    client = APIClient()
    client.force_authenticate(User.objects.get(username="alice"))

    in_meta = client.post(
        "/v4/events",
        {"pipelineId": pipeline.pk, "meta": {"parameters": {"region": {"value": "x"}}}},
        format="json",
    )
    top = client.post(
        "/v4/events",
        {"pipelineId": pipeline.pk, "parameters": {"region": {"value": "y"}}},
        format="json",
    )

    assert in_meta.status_code == 201, in_meta.content
    assert top.status_code == 201, top.content
    assert in_meta.json()["meta"]["parameters"]["region"]["value"] == "x"
    assert top.json()["meta"]["parameters"]["region"]["value"] == "y"


# --- virtual jobs ---------------------------------------------------------------------------

VIRTUAL = """
shared:
  image: alpine
jobs:
  gate:
    requires: [~commit]
    annotations:
      screwdriver.cd/virtualJob: true
    steps:
      - never: echo never
  build:
    requires: [gate]
    steps:
      - build: echo build
  lint:
    requires: [~commit]
    steps:
      - lint: echo lint
  release:
    requires: [build, lint]
    annotations:
      screwdriver.cd/virtualJob: true
    steps:
      - never: echo never
  publish:
    requires: [release]
    steps:
      - publish: echo publish
"""


def test_a_virtual_start_job_succeeds_at_once_and_its_next_job_is_queued() -> None:
    event = new_event(pipeline_of(VIRTUAL), VIRTUAL)

    (gate,) = builds_of(event, "gate")
    assert gate.status == BuildStatus.SUCCESS
    assert gate.start_time is not None and gate.end_time is not None
    assert not gate.steps.exists()
    assert [b.status for b in builds_of(event, "build")] == [BuildStatus.QUEUED]
    assert builds_of(event, "build")[0].parent_build_id == gate.pk


def test_a_virtual_join_succeeds_when_its_parents_did_and_starts_what_follows() -> None:
    event = new_event(pipeline_of(VIRTUAL), VIRTUAL)
    run(builds_of(event, "lint")[0])
    assert [b.status for b in builds_of(event, "release")] == [BuildStatus.CREATED]

    run(builds_of(event, "build")[0])

    assert [b.status for b in builds_of(event, "release")] == [BuildStatus.SUCCESS]
    assert [b.status for b in builds_of(event, "publish")] == [BuildStatus.QUEUED]
    run(builds_of(event, "publish")[0])
    assert Event.objects.get(pk=event.pk).status == Event.Status.SUCCESS


# --- restarts -------------------------------------------------------------------------------

DIAMOND = """
shared:
  image: alpine
jobs:
  main:
    requires: [~commit]
    steps:
      - main: echo main
  publish:
    requires: [main]
    steps:
      - publish: echo publish
  docs:
    requires: [main]
    steps:
      - docs: echo docs
  deploy:
    requires: [publish, docs]
    steps:
      - deploy: echo deploy
"""


def _diamond_event(make_repo: MakeRepo, docs: str) -> Event:
    event = git_event(git_pipeline_of(make_repo, DIAMOND))
    run(builds_of(event, "main")[0])
    run(builds_of(event, "publish")[0])
    docs_build = builds_of(event, "docs")[0]
    services.mark_running(build_id=docs_build.pk)
    services.finish_build(build_id=docs_build.pk, status=docs, meta={"docs": {"url": "u"}})
    for deploy in builds_of(event, "deploy"):
        run(deploy)
    return Event.objects.get(pk=event.pk)


def test_a_join_in_a_restart_counts_the_parent_events_result_of_its_other_parent(
    make_repo: MakeRepo,
) -> None:
    from pipelines.services import restart_event

    first = _diamond_event(make_repo, BuildStatus.SUCCESS)
    restarted = restart_event(parent_event=first, start_from="publish", creator=Creator("A", "a"))

    run(builds_of(restarted, "publish")[0])

    (deploy,) = builds_of(restarted, "deploy")
    assert deploy.status == BuildStatus.QUEUED
    docs = builds_of(first, "docs")[0]
    assert deploy.parent_builds[str(first.pipeline_id)]["jobs"]["docs"] == docs.pk
    assert launch_spec(deploy)["meta"]["docs"] == {"url": "u"}
    assert builds_of(restarted, "docs") == []


def test_a_restart_does_not_run_a_join_whose_other_parent_failed_before(
    make_repo: MakeRepo,
) -> None:
    from pipelines.services import restart_event

    first = _diamond_event(make_repo, BuildStatus.FAILURE)
    restarted = restart_event(parent_event=first, start_from="publish", creator=Creator("A", "a"))

    run(builds_of(restarted, "publish")[0])

    assert builds_of(restarted, "deploy") == []


def test_a_restart_waits_for_a_join_parent_it_runs_itself(make_repo: MakeRepo) -> None:
    from pipelines.services import restart_event

    first = _diamond_event(make_repo, BuildStatus.SUCCESS)
    restarted = restart_event(parent_event=first, start_from="main", creator=Creator("A", "a"))
    run(builds_of(restarted, "main")[0])

    run(builds_of(restarted, "publish")[0])

    assert [b.status for b in builds_of(restarted, "deploy")] == [BuildStatus.CREATED]
    run(builds_of(restarted, "docs")[0])
    assert [b.status for b in builds_of(restarted, "deploy")] == [BuildStatus.QUEUED]


def test_a_restart_does_not_take_an_old_result_of_a_job_it_has_yet_to_run(
    make_repo: MakeRepo,
) -> None:
    from pipelines.services import restart_event

    yaml = DIAMOND.replace("requires: [publish, docs]", "requires: [publish, late]") + (
        "  late:\n    requires: [docs]\n    steps:\n      - late: echo late\n"
    )
    first = git_event(git_pipeline_of(make_repo, yaml))
    for job in ["main", "publish", "docs", "late"]:
        run(builds_of(first, job)[0])
    assert [b.status for b in builds_of(first, "deploy")] == [BuildStatus.QUEUED]
    restarted = restart_event(parent_event=first, start_from="main", creator=Creator("A", "a"))
    run(builds_of(restarted, "main")[0])

    run(builds_of(restarted, "publish")[0])

    assert [b.status for b in builds_of(restarted, "deploy")] == [BuildStatus.CREATED]


# --- [skip further] -------------------------------------------------------------------------


def test_skip_further_in_the_cause_message_stops_after_the_first_jobs() -> None:
    event = new_event(pipeline_of(DIAMOND), DIAMOND, cause_message="hotfix [skip further] please")

    run(builds_of(event, "main")[0])

    assert builds_of(event, "publish") == [] and builds_of(event, "docs") == []
    assert Event.objects.get(pk=event.pk).status == Event.Status.SUCCESS


def test_skip_further_in_the_commit_message_stops_after_the_first_jobs(
    make_repo: MakeRepo,
) -> None:
    repo = make_repo({"screwdriver.yaml": DIAMOND})
    user = User.objects.create_user(username="alice")
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=user)
    repo.push({"README.md": "x"}, "Docs only [Skip Further]")
    event = git_event(pipeline)
    assert "[Skip Further]" in event.commit["message"]

    run(builds_of(event, "main")[0])

    assert builds_of(event, "publish") == []


def test_without_skip_further_the_next_jobs_run() -> None:
    event = new_event(pipeline_of(DIAMOND), DIAMOND, cause_message="skip further, not")

    run(builds_of(event, "main")[0])

    assert len(builds_of(event, "publish")) == 1


# --- blockedBy, blocked by the same job, collapseBuilds --------------------------------------

BLOCKING = """
shared:
  image: alpine
jobs:
  main:
    requires: [~commit]
    steps:
      - main: echo main
  deploy:
    requires: [~commit]
    blockedBy: [~main]
    annotations:
      screwdriver.cd/collapseBuilds: false
    steps:
      - deploy: echo deploy
"""


def test_a_build_waits_as_blocked_while_its_blocking_job_runs_then_is_queued() -> None:
    event = new_event(pipeline_of(BLOCKING), BLOCKING)
    (main,) = builds_of(event, "main")
    (deploy,) = builds_of(event, "deploy")
    assert deploy.status == BuildStatus.BLOCKED
    assert Event.objects.get(pk=event.pk).status == Event.Status.IN_PROGRESS

    run(main)

    deploy.refresh_from_db()
    assert deploy.status == BuildStatus.QUEUED


def test_a_build_waits_for_the_running_build_of_its_own_job_in_another_event() -> None:
    pipeline = pipeline_of(BLOCKING)
    first = new_event(pipeline, BLOCKING)
    (first_main,) = builds_of(first, "main")
    services.mark_running(build_id=first_main.pk)

    second = new_event(pipeline, BLOCKING)
    (second_main,) = builds_of(second, "main")
    assert second_main.status == BuildStatus.BLOCKED

    services.finish_build(build_id=first_main.pk, status=BuildStatus.SUCCESS)
    second_main.refresh_from_db()
    assert second_main.status == BuildStatus.QUEUED


def _same_job_unblocked(wait: str = "") -> str:
    return BLOCKING.replace(
        "  main:\n    requires: [~commit]\n",
        "  main:\n    requires: [~commit]\n    annotations:\n"
        "      screwdriver.cd/blockedBySameJob: false\n"
        + (f"      screwdriver.cd/blockedBySameJobWaitTime: {wait}\n" if wait else ""),
    )


def test_blocked_by_the_same_job_can_be_turned_off() -> None:
    yaml = _same_job_unblocked("0")
    pipeline = pipeline_of(yaml)
    services.mark_running(build_id=builds_of(new_event(pipeline, yaml), "main")[0].pk)

    second = new_event(pipeline, yaml)

    assert builds_of(second, "main")[0].status == BuildStatus.QUEUED


def test_without_blocked_by_the_same_job_builds_of_a_job_start_the_wait_time_apart() -> None:
    yaml = _same_job_unblocked()  # Screwdriver's default wait: 5 minutes
    pipeline = pipeline_of(yaml)
    (first,) = builds_of(new_event(pipeline, yaml), "main")
    services.mark_running(build_id=first.pk)
    (second,) = builds_of(new_event(pipeline, yaml), "main")
    assert second.status == BuildStatus.BLOCKED

    services.release_after_waits()
    second.refresh_from_db()
    assert second.status == BuildStatus.BLOCKED  # the first has not run 5 minutes yet

    Build.objects.filter(pk=first.pk).update(start_time=timezone.now() - timedelta(minutes=6))
    services.release_after_waits()
    second.refresh_from_db()
    assert second.status == BuildStatus.QUEUED
    assert Build.objects.get(pk=first.pk).status == BuildStatus.RUNNING  # side by side


def test_a_newer_waiting_build_collapses_the_older_waiting_one() -> None:
    pipeline = pipeline_of(BLOCKING)
    running = builds_of(new_event(pipeline, BLOCKING), "main")[0]
    services.mark_running(build_id=running.pk)
    older_event = new_event(pipeline, BLOCKING)
    (older,) = builds_of(older_event, "main")
    assert older.status == BuildStatus.BLOCKED

    newer_event = new_event(pipeline, BLOCKING)

    older.refresh_from_db()
    (newer,) = builds_of(newer_event, "main")
    assert older.status == BuildStatus.COLLAPSED
    assert newer.status == BuildStatus.BLOCKED
    services.finish_build(build_id=running.pk, status=BuildStatus.SUCCESS)
    newer.refresh_from_db()
    assert newer.status == BuildStatus.QUEUED


def test_permutations_of_one_matrix_job_do_not_block_each_other() -> None:
    event = new_event(pipeline_of(MATRIX), MATRIX)

    assert {b.status for b in builds_of(event, "test")} == {BuildStatus.QUEUED}
