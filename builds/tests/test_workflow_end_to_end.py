"""Workflow semantics with real builds: real git, the real worker, the real launcher over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from builds.models import Build, BuildStatus, Step
from conftest import wait_until
from pipelines.models import Event, Pipeline
from pipelines.services import Creator, create_pipeline, restart_event, start_event

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _admin() -> User:
    return User.objects.create_user(username="alice", password="pw-alice-123")


def _done(event: Event) -> Event | None:
    event.refresh_from_db()
    active = Build.objects.filter(event=event, status__in=["QUEUED", "RUNNING", "CREATED"]).exists()
    return event if not active and event.status != Event.Status.IN_PROGRESS else None


def _log(build: Build, step: str) -> list[str]:
    from builds.logs import read_page

    return [
        line["m"]
        for line in read_page(step=Step.objects.get(build=build, name=step), pages=100).lines
    ]


def _start(pipeline: Pipeline, **kwargs: Any) -> Event:
    return start_event(
        pipeline=pipeline, start_from="~commit", creator=Creator("a", "alice"), **kwargs
    )


MATRIX = """
jobs:
  test:
    image: node:{{NODE}}
    requires: [~commit]
    matrix:
      NODE: [18, 20, 22]
    steps:
      - test: echo "node $NODE" && meta set "seen.n$NODE" "$SD_BUILD_ID"
  after:
    image: alpine
    requires: [test]
    steps:
      - after: echo "after $(meta get seen.n18) $(meta get seen.n20) $(meta get seen.n22)"
"""


def test_all_three_permutations_of_a_matrix_run_and_the_job_after_runs_once(
    stack: Any, make_repo: Any
) -> None:
    user = _admin()
    pipeline = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": MATRIX}).checkout_url, user=user
    )
    event = _start(pipeline)

    done = wait_until(lambda: _done(event), timeout=90, what="the matrix event to finish")

    assert done.status == Event.Status.SUCCESS
    tests = list(Build.objects.filter(event=event, job__name="test").order_by("permutation"))
    assert [(b.permutation, b.container, b.status) for b in tests] == [
        (0, "node:18", BuildStatus.SUCCESS),
        (1, "node:20", BuildStatus.SUCCESS),
        (2, "node:22", BuildStatus.SUCCESS),
    ]
    assert [_log(b, "test") for b in tests] == [["node 18"], ["node 20"], ["node 22"]]
    after = Build.objects.get(event=event, job__name="after")
    assert after.status == BuildStatus.SUCCESS
    assert after.start_time >= max(b.end_time for b in tests)  # type: ignore[operator,type-var]
    assert _log(after, "after") == [f"after {tests[0].pk} {tests[1].pk} {tests[2].pk}"]

    client = APIClient()
    client.force_authenticate(user)
    listed = client.get(f"/v4/events/{event.pk}/builds").json()
    assert sorted(b["id"] for b in listed) == sorted([*(b.pk for b in tests), after.pk])
    assert {b["environment"].get("NODE") for b in listed} == {"18", "20", "22", None}


PARAMETERS = """
parameters:
  region: us-west-1
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - region: echo "region $(meta get parameters.region.value)"
      - remember: meta set release.name "r-$SD_BUILD_ID"
  deploy:
    image: alpine
    requires: [main]
    steps:
      - deploy: echo "deploy $(meta get release.name) to $(meta get parameters.region.value)"
"""


def test_a_parameter_chosen_at_start_is_read_with_meta_get_and_kept_by_a_restart(
    stack: Any, make_repo: Any
) -> None:
    user = _admin()
    pipeline = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": PARAMETERS}).checkout_url, user=user
    )
    client = APIClient()
    client.force_authenticate(user)
    response = client.post(
        "/v4/events",
        {"pipelineId": pipeline.pk, "meta": {"parameters": {"region": {"value": "eu-north-1"}}}},
        format="json",
    )
    assert response.status_code == 201, response.content
    first = Event.objects.get(pk=response.json()["id"])
    wait_until(lambda: _done(first), timeout=60, what="the first event to finish")
    main = Build.objects.get(event=first, job__name="main")
    assert _log(main, "region") == ["region eu-north-1"]

    restarted = restart_event(parent_event=first, start_from="deploy", creator=Creator("a", "a"))
    done = wait_until(lambda: _done(restarted), timeout=60, what="the restart to finish")

    assert done.status == Event.Status.SUCCESS
    deploy = Build.objects.get(event=restarted)
    assert deploy.job.name == "deploy"
    assert _log(deploy, "deploy") == [f"deploy r-{main.pk} to eu-north-1"]


VIRTUAL = """
shared:
  image: alpine
jobs:
  gate:
    requires: [~commit]
    annotations:
      screwdriver.cd/virtualJob: true
    steps:
      - never: touch %(marker)s
  build:
    requires: [gate]
    steps:
      - build: echo "after the gate $SD_PARENT_BUILD_ID"
"""


def test_a_virtual_job_succeeds_without_running_and_the_next_job_runs(
    stack: Any, make_repo: Any, tmp_path: Any
) -> None:
    marker = tmp_path / "virtual-ran"
    yaml = VIRTUAL % {"marker": marker}
    pipeline = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": yaml}).checkout_url, user=_admin()
    )
    event = _start(pipeline)

    done = wait_until(lambda: _done(event), timeout=60, what="the event to finish")

    assert done.status == Event.Status.SUCCESS
    gate = Build.objects.get(event=event, job__name="gate")
    after = Build.objects.get(event=event, job__name="build")
    assert gate.status == BuildStatus.SUCCESS and after.status == BuildStatus.SUCCESS
    assert gate.dispatched_at is None and not gate.steps.exists()
    assert not marker.exists()
    assert _log(after, "build") == [f"after the gate {gate.pk}"]


BLOCKED = """
shared:
  image: alpine
jobs:
  migrate:
    requires: [~commit]
    steps:
      - migrate: sleep 2 && echo migrated
  deploy:
    requires: [~commit]
    blockedBy: [~migrate]
    steps:
      - deploy: echo deployed
"""


def test_a_blocked_job_waits_for_its_blocking_job_and_then_runs(stack: Any, make_repo: Any) -> None:
    pipeline = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": BLOCKED}).checkout_url, user=_admin()
    )
    event = _start(pipeline)
    deploy = Build.objects.get(event=event, job__name="deploy")
    assert deploy.status == BuildStatus.BLOCKED

    done = wait_until(lambda: _done(event), timeout=60, what="the event to finish")

    assert done.status == Event.Status.SUCCESS
    migrate = Build.objects.get(event=event, job__name="migrate")
    deploy.refresh_from_db()
    assert (migrate.status, deploy.status) == (BuildStatus.SUCCESS, BuildStatus.SUCCESS)
    assert deploy.start_time >= migrate.end_time  # type: ignore[operator]
    assert _log(deploy, "deploy") == ["deployed"]
