"""Build caches in containers on a real Docker engine: the launcher, outside the container,
restores and saves the workspace's cache paths; the image's own paths are said to be skipped."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from builds.logs import read_page
from builds.models import Build, BuildStatus, Step
from conftest import wait_until
from executors.tests.docker_engine import IMAGE
from pipelines.models import Event
from pipelines.services import Creator, create_pipeline, start_event

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

YAML = f"""
cache:
  job:
    main: [deps, /root/.m2]
shared:
  image: {IMAGE}
  annotations:
    screwdriver.cd/executor: docker
jobs:
  main:
    requires: [~commit]
    steps:
      - show: cat deps/lib/version 2>/dev/null || echo "no cache"
      - fill: mkdir -p deps/lib && echo "built in event $SD_EVENT_ID" > deps/lib/version
"""


@pytest.fixture
def stack_env() -> dict[str, str]:
    return {"SD_EXECUTORS": "docker"}


def log(build: Build, step: str) -> list[str]:
    return [line["m"] for line in read_page(step=Step.objects.get(build=build, name=step)).lines]


def finished(event: Event) -> Build:
    def done() -> Build | None:
        build = Build.objects.filter(event=event).first()
        return build if build is not None and build.is_finished else None

    build = wait_until(done, timeout=120, what="the build to finish")
    steps = {s.name: log(build, s.name) for s in Step.objects.filter(build=build)}
    assert build.status == BuildStatus.SUCCESS, (build.status_message, steps)
    return build


def test_a_job_cache_filled_in_one_container_is_there_in_the_next(
    docker_stack: Any, make_repo: Any
) -> None:
    alice = User.objects.create_user(username="alice", password="pw-alice-123")
    repo = make_repo({"screwdriver.yaml": YAML})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=alice)
    creator = Creator("Alice", "alice")

    first = finished(start_event(pipeline=pipeline, start_from="~commit", creator=creator))
    assert log(first, "show") == ["no cache"]
    skipped = "Skipping the job cache /root/.m2: it is /root/.m2, outside the build's workspace"
    assert log(first, "sd-teardown-cache")[0].startswith("Saved the job cache deps from ")
    assert log(first, "sd-teardown-cache")[1].startswith(skipped)

    second = finished(start_event(pipeline=pipeline, start_from="~commit", creator=creator))
    assert log(second, "show") == [f"built in event {first.event_id}"]
    assert log(second, "sd-setup-cache")[0].startswith("Restored the job cache deps into ")
    assert log(second, "sd-setup-cache")[1].startswith(skipped)
