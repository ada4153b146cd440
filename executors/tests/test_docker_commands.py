"""Commands in containers with nothing but /bin/sh, through the real ASGI server: a build
publishes binary, habitat and docker commands with `sd-cmd publish`, another pipeline's steps
run them with `sd-cmd exec`; the launcher fetches the binary (or names the habitat package), the
step runs it. `hab` is an outside program: the user's step writes a stand-in for it."""

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
from pipelines.models import Command, Event
from pipelines.services import Creator, create_pipeline, start_event
from tools.live_stack import LiveStack

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ALICE = Creator("Alice", "alice")
SD_COMMAND = """\
namespace: ns
name: cmd
version: '1'
description: Greets its first argument
maintainer: alice@example.com
format: binary
binary:
  file: greet.sh
"""
GREET = '#!/bin/sh\necho "hello $1 from ns/cmd in $(uname -s)"\n'
PUBLISHER = """\
jobs:
  publish:
    image: {image}
    annotations:
      screwdriver.cd/executor: docker
    requires: [~commit]
    steps:
      - validate: sd-cmd validate
      - publish: sd-cmd publish -t stable
      - others: sd-cmd publish -f hab.yaml && sd-cmd publish -f docker.yaml
"""
HAB = """\
namespace: ns
name: hab
version: '1'
description: Git from the Habitat depot
maintainer: alice@example.com
format: habitat
habitat:
  mode: remote
  package: core/git
  command: git
"""
DOCKER = """\
namespace: ns
name: box
version: '1'
description: A tool in an image
maintainer: alice@example.com
format: docker
docker:
  image: alpine:3
"""
FAKE_HAB = '#!/bin/sh\nfor a in "$@"; do echo "hab: $a"; done\n'
USER_YAML = """\
jobs:
  main:
    image: {image}
    annotations:
      screwdriver.cd/executor: docker
    requires: [~commit]
    steps:
      - run: sd-cmd exec ns/cmd@1 arg
      - again: sd-cmd exec ns/cmd@stable "two words"
      - logs: ls "$SD_ARTIFACTS_DIR/.sd/commands/ns/cmd" | wc -l
      - nohab: sd-cmd exec ns/hab@1 --version || echo "exit $?"
      - hab: |
          mkdir -p "$SD_ROOT_DIR/tools" && cp tools/hab "$SD_ROOT_DIR/tools/hab"
          chmod +x "$SD_ROOT_DIR/tools/hab" && export PATH="$SD_ROOT_DIR/tools:$PATH"
          sd-cmd exec ns/hab@1 "two words" -v
      - docker: sd-cmd exec ns/box@1 || echo "exit $?"
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


def _wait(event: Event) -> Build:
    def finished() -> Build | None:
        build = Build.objects.filter(event=event).first()
        if build is None or build.status in {BuildStatus.QUEUED, BuildStatus.RUNNING}:
            return None
        return build

    return wait_until(finished, timeout=120, what="the container build to finish")


def test_a_container_publishes_a_binary_command_that_another_containers_step_runs(
    server: LiveStack, busybox_image: str, make_repo: Callable[..., GitRepo]
) -> None:
    alice = User.objects.create_user(username="alice")
    repo = make_repo(
        {
            "screwdriver.yaml": PUBLISHER.format(image=busybox_image),
            "sd-command.yaml": SD_COMMAND,
            "greet.sh": GREET,
            "hab.yaml": HAB,
            "docker.yaml": DOCKER,
        },
        "box",
    )
    owner = create_pipeline(checkout_url=repo.checkout_url, user=alice)

    publish = _wait(start_event(pipeline=owner, start_from="~commit", creator=ALICE))

    assert publish.status == BuildStatus.SUCCESS, publish.status_message
    assert publish.executor == "docker"
    assert step_log(publish, "validate") == ["Command is valid"]
    assert step_log(publish, "publish") == [
        "Command ns/cmd@1.0.0 was successfully published and tagged as stable"
    ]
    assert Command.objects.get(namespace="ns", name="cmd").binary_size == len(GREET)

    user = create_pipeline(
        checkout_url=make_repo(
            {"screwdriver.yaml": USER_YAML.format(image=busybox_image), "tools/hab": FAKE_HAB},
            "user",
        ).checkout_url,
        user=alice,
    )
    main = _wait(start_event(pipeline=user, start_from="~commit", creator=ALICE))

    assert main.status == BuildStatus.SUCCESS, main.status_message
    assert main.executor == "docker"
    assert step_log(main, "run") == ["hello arg from ns/cmd in Linux"]
    assert step_log(main, "again") == ["hello two words from ns/cmd in Linux"]
    assert [line.strip() for line in step_log(main, "logs")] == ["2"]
    assert step_log(main, "nohab") == [
        "sd-cmd: ns/hab is a habitat command (package core/git), but this build has no `hab` "
        "on its PATH: use a job image with Habitat installed, or publish the command as a binary.",
        "exit 1",
    ]
    assert step_log(main, "hab") == [
        "hab: pkg",
        "hab: install",
        "hab: core/git",
        "hab: pkg",
        "hab: exec",
        "hab: core/git",
        "hab: git",
        "hab: two words",
        "hab: -v",
    ]
    assert step_log(main, "docker") == [
        "sd-cmd: ns/box is a docker command (image alpine:3), but this build runs in a container "
        "or a sandbox, which cannot reach a Docker engine: publish the command as a binary, or "
        "use the image as the job's image.",
        "exit 1",
    ]
