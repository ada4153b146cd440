"""A build its executor cannot run fails before anything starts, with one sentence."""

from __future__ import annotations

from typing import Any

import pytest

from builds.dispatch import start_build
from builds.models import Build, BuildStatus
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml

pytestmark = pytest.mark.django_db

YAML = """
jobs:
  main:
    image: docker:27
    requires: [~commit]
    annotations:
      screwdriver.cd/dockerEnabled: true
    steps:
      - build: docker build .
"""


def test_a_job_asking_for_docker_in_docker_fails_early_saying_why(settings: Any) -> None:
    settings.SD_API_URL = "http://127.0.0.1:9"
    settings.SD_EXECUTOR = "local"
    pipeline = pipeline_from_yaml(YAML)
    build = Build.objects.get(event=event_from_yaml(pipeline, YAML))

    start_build(build_id=build.pk)

    build.refresh_from_db()
    assert build.status == BuildStatus.FAILURE
    assert build.dispatched_at is None and build.executor_state == {}
    assert "screwdriver.cd/dockerEnabled" in build.status_message
    assert "'local' executor" in build.status_message
