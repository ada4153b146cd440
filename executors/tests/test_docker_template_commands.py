"""A container build with nothing but /bin/sh publishes and tags a template through the real
ASGI server: its shell clients hand the file to the launcher, which calls the API."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from builds.models import Build, BuildStatus
from builds.tests.step_logs import step_log
from conftest import GitRepo, database_url, wait_until
from executors.tests.docker_engine import containers_of
from pipelines.models import Template, TemplateTag
from pipelines.services import Creator, create_pipeline, start_event
from tools.live_stack import LiveStack

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SD_TEMPLATE = """\
namespace: box
name: hello
version: '2.1'
description: Says hello from a container
maintainer: alice@example.com
config:
  image: alpine
  steps:
    - hello: echo hello
"""
PUBLISHER = """\
jobs:
  publish:
    image: {image}
    annotations:
      screwdriver.cd/executor: docker
    requires: [~commit]
    environment:
      SD_TEMPLATE_PATH: templates/hello.yaml
    steps:
      - validate: template-validate
      - publish: template-publish --tag beta
"""


@pytest.fixture
def server(transactional_db: None, tmp_path: Path, busybox_image: str) -> Iterator[LiveStack]:
    instance = f"sdtest-{uuid.uuid4().hex[:10]}"
    stack = LiveStack.start(
        database_url=database_url(),
        data_dir=tmp_path / "sd-data",
        secret_key=django_settings.SECRET_KEY,
        extra_env={
            "SD_EXECUTORS": "docker",
            "SD_INSTANCE": instance,
            "SD_DOCKER_PULL": "missing",
            "SD_BUILD_LEASE_SECONDS": "4",
        },
    )
    yield stack
    stack.stop()
    for container in containers_of(instance):
        container.remove(force=True)


def test_a_container_with_only_a_shell_publishes_and_tags_a_template(
    server: LiveStack, busybox_image: str, make_repo: Callable[..., GitRepo]
) -> None:
    alice = User.objects.create_user(username="alice")
    repo = make_repo(
        {
            "screwdriver.yaml": PUBLISHER.format(image=busybox_image),
            "templates/hello.yaml": SD_TEMPLATE,
        },
        "box",
    )
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=alice)
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("Alice", "alice"))

    def finished() -> Build | None:
        build = Build.objects.filter(event=event).first()
        if build is None or build.status in {BuildStatus.QUEUED, BuildStatus.RUNNING}:
            return None
        return build

    build = wait_until(finished, timeout=120, what="the container build to finish")

    assert build.status == BuildStatus.SUCCESS, build.status_message
    assert build.executor == "docker"
    assert step_log(build, "validate") == ["Template is valid"]
    assert step_log(build, "publish") == [
        "Template box/hello@2.1.0 was successfully published and tagged as beta"
    ]
    template = Template.objects.get(namespace="box", name="hello")
    assert template.config == {"image": "alpine", "steps": [{"hello": "echo hello"}]}
    assert list(TemplateTag.objects.values_list("tag", "version")) == [("beta", "2.1.0")]
