"""A docker-format command run by `sd-cmd exec` from a real local build whose steps reach the
Docker engine (the local executor without its sandbox), through the real ASGI server: the image
runs with the step's arguments, the build's SD_* variables and its workspace."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from builds.models import Build, BuildStatus
from builds.tests.step_logs import step_log
from conftest import GitRepo, database_url, wait_until
from pipelines.models import Command, Event
from pipelines.services import Creator, create_pipeline, start_event
from tools.live_stack import LiveStack

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ALICE = Creator("Alice", "alice")
SD_COMMAND = """\
namespace: ns
name: tool
version: '1'
description: A shell in an image
maintainer: alice@example.com
format: docker
docker:
  image: {image}
  command: sh
"""
PUBLISHER = """\
jobs:
  publish:
    image: alpine
    requires: [~commit]
    steps:
      - publish: sd-cmd publish
"""
USER_YAML = """\
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - run: |
          sd-cmd exec ns/tool@1 -c 'echo "hello $1 in $(pwd) of build $SD_BUILD_ID"
          echo "$IMAGE_VAR" > from-container.txt' - "the world"
      - written: cat from-container.txt && pwd
      - noengine: DOCKER_HOST=unix:///nonexistent.sock sd-cmd exec ns/tool@1 -c true || echo "$?"
      - failing: sd-cmd exec ns/tool@latest -c 'exit 3' || echo "exit $?"
      - debug: cat "$SD_ARTIFACTS_DIR"/.sd/commands/ns/tool/*.log | cut -d' ' -f2-
"""


@pytest.fixture
def server(transactional_db: None, tmp_path: Path) -> Iterator[LiveStack]:
    stack = LiveStack.start(
        database_url=database_url(),
        data_dir=tmp_path / "sd-data",
        secret_key=django_settings.SECRET_KEY,
        # The operator's choice that lets steps reach the engine: no sandbox.
        extra_env={"SD_BUILD_LEASE_SECONDS": "4", "SD_LOCAL_SANDBOX": "none"},
    )
    yield stack
    stack.stop()


def _wait(event: Event) -> Build:
    def finished() -> Build | None:
        build = Build.objects.filter(event=event).first()
        if build is None or build.status in {BuildStatus.QUEUED, BuildStatus.RUNNING}:
            return None
        return build

    return wait_until(finished, timeout=120, what="the build to finish")


def test_a_docker_command_runs_its_image_with_the_steps_arguments(
    server: LiveStack, busybox_image: str, make_repo: Callable[..., GitRepo]
) -> None:
    alice = User.objects.create_user(username="alice")
    source = make_repo(
        {"screwdriver.yaml": PUBLISHER, "sd-command.yaml": SD_COMMAND.format(image=busybox_image)},
        "tool",
    )
    owner = create_pipeline(checkout_url=source.checkout_url, user=alice)
    publish = _wait(start_event(pipeline=owner, start_from="~commit", creator=ALICE))
    assert publish.status == BuildStatus.SUCCESS, publish.status_message
    command = Command.objects.get(namespace="ns", name="tool")
    assert (command.format, command.spec) == ("docker", {"image": busybox_image, "command": "sh"})

    user = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": USER_YAML}, "user").checkout_url, user=alice
    )
    main = _wait(start_event(pipeline=user, start_from="~commit", creator=ALICE))

    assert main.status == BuildStatus.SUCCESS, main.status_message
    written, source_dir = step_log(main, "written")
    # The container wrote into the build's workspace, from the step's directory.
    assert written == "from-the-image"
    assert step_log(main, "run") == [f"hello the world in {source_dir} of build {main.pk}"]
    assert step_log(main, "noengine") == [
        f"sd-cmd: ns/tool is a docker command (image {busybox_image}), but this build cannot "
        "reach a Docker engine (builds may start containers only on the local executor without "
        "its sandbox): publish the command as a binary, or use the image as the job's image.",
        "1",
    ]
    assert step_log(main, "failing") == ["exit 3"]
    debug = step_log(main, "debug")
    assert debug.count("sd-cmd exec ns/tool@1: version 1.0.0, format docker") == 2
    ran = [line for line in debug if line.startswith("ran ")]
    assert len(ran) == 2, debug
    assert ran[0].endswith(f" {busybox_image} sh with 4 argument(s): exit 0"), ran
    assert f" --workdir {source_dir} " in ran[0], ran
    assert "--env SD_BUILD_ID" in ran[0]
    assert ran[1].endswith(f" {busybox_image} sh with 2 argument(s): exit 3"), ran
    assert any(line.startswith("error: ns/tool is a docker command") for line in debug), debug
