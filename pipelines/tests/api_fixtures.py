"""Shared setup of the API tests: a pipeline with an event, builds, a secret and tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from builds.models import Build, BuildStatus, Step
from conftest import GitRepo
from pipelines.models import Event, Pipeline
from pipelines.services import Creator, create_pipeline, start_event
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml

SECRET_VALUE = "s3cr3t-value-that-must-never-show"

CHAIN = """
shared:
  image: node:18
jobs:
  main:
    requires: [~commit]
    secrets: [DEPLOY_KEY]
    steps:
      - hello: echo hello
      - world: echo world
  publish:
    requires: [main]
    steps:
      - publish: echo publish
"""


def with_bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def new_event(pipeline: Pipeline, username: str = "alice") -> Event:
    return start_event(
        pipeline=pipeline, start_from="~commit", creator=Creator(username.title(), username)
    )


def main_build(event: Event) -> Build:
    return Build.objects.select_related("job__pipeline", "event").get(event=event, job__name="main")


def finish(build: Build, *, status: str = BuildStatus.SUCCESS, ago_seconds: float = 0) -> Build:
    """Put a build in a finished state directly (the services are tested elsewhere)."""
    ended = timezone.now() - timedelta(seconds=ago_seconds)
    Build.objects.filter(pk=build.pk).update(
        status=status, start_time=ended, end_time=ended, meta={"version": "1.0"}
    )
    Step.objects.filter(build=build).update(start_time=ended, end_time=ended, code=0)
    build.refresh_from_db()
    return build


@dataclass
class World:
    """A pipeline of alice's with one finished and one queued event."""

    owner: User
    pipeline: Pipeline
    done: Event
    event: Event
    build: Build

    def ids(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline.pk,
            "event": self.event.pk,
            "build": self.build.pk,
            "job": self.build.job_id,
        }


def make_world(owner: User, repo: GitRepo | None = None, *, name: str = "local/app") -> World:
    """Two events of a CHAIN pipeline of `owner`'s: on `repo`, or without git when none is given.

    Give a repository when the test reads it: starts, restarts and syncs through the API.
    """
    if repo is None:
        pipeline = pipeline_from_yaml(CHAIN, owner=owner, name=name)
        done = event_from_yaml(pipeline, CHAIN)
        finish(main_build(done))
        event = event_from_yaml(pipeline, CHAIN)
    else:
        pipeline = create_pipeline(checkout_url=repo.checkout_url, user=owner)
        done = new_event(pipeline)
        finish(main_build(done))
        event = new_event(pipeline)
    return World(owner=owner, pipeline=pipeline, done=done, event=event, build=main_build(event))
