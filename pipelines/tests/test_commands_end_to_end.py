"""Commands on real builds behind the real ASGI server: one pipeline publishes a binary command
with `sd-cmd publish`, another pipeline's step runs it with `sd-cmd exec`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from builds.models import Build, BuildStatus
from builds.tests.step_logs import step_log
from conftest import GitRepo, database_url, wait_until
from pipelines.models import Command, CommandTag, Event
from pipelines.services import Creator, create_pipeline, start_event
from tools.live_stack import LiveStack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ALICE = Creator("Alice Smith", "alice")
SD_COMMAND = """\
namespace: ns
name: cmd
version: '1.0'
description: Greets its first argument
maintainer: alice@example.com
format: binary
binary:
  file: ./greet.sh
"""
GREET = '#!/bin/sh\necho "hello $1 from ns/cmd"\n'
PUBLISHER = """\
jobs:
  publish:
    image: alpine
    requires: [~commit]
    steps:
      - validate: sd-cmd validate -f commands/sd-command.yaml
      - publish: sd-cmd publish -f commands/sd-command.yaml
      - promote: sd-cmd promote ns/cmd 1.0.0 stable
"""
USER_YAML = """\
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - run: sd-cmd exec ns/cmd@1 arg
      - again: sd-cmd exec ns/cmd@stable world
      - logs: ls "$SD_ARTIFACTS_DIR/.sd/commands/ns/cmd" | wc -l
      - docker: sd-cmd exec ns/box@1
"""


@pytest.fixture
def server(transactional_db: None, tmp_path: Path) -> Iterator[LiveStack]:
    stack = LiveStack.start(
        database_url=database_url(),
        data_dir=tmp_path / "sd-data",
        secret_key=django_settings.SECRET_KEY,
        extra_env={"SD_BUILD_LEASE_SECONDS": "4"},
    )
    yield stack
    stack.stop()


def _wait(event: Event, job: str) -> Build:
    def finished() -> Build | None:
        build = Build.objects.filter(event=event, job__name=job).first()
        if build is None or build.status in {BuildStatus.QUEUED, BuildStatus.RUNNING}:
            return None
        return build

    return wait_until(finished, timeout=120, what=f"{job} to finish")


def test_a_build_publishes_a_binary_command_that_another_pipeline_runs(
    server: LiveStack, make_repo: Callable[..., GitRepo]
) -> None:
    alice = User.objects.create_user(username="alice")
    source = make_repo(
        {
            "screwdriver.yaml": PUBLISHER,
            "commands/sd-command.yaml": SD_COMMAND,
            "commands/greet.sh": GREET,
        },
        "cmd",
    )
    owner = create_pipeline(checkout_url=source.checkout_url, user=alice)

    publish = _wait(start_event(pipeline=owner, start_from="~commit", creator=ALICE), "publish")

    assert publish.status == BuildStatus.SUCCESS, publish.status_message
    assert step_log(publish, "validate") == ["Command is valid"]
    assert step_log(publish, "publish") == [
        "Command ns/cmd@1.0.0 was successfully published and tagged as latest"
    ]
    assert step_log(publish, "promote") == [
        "Command ns/cmd@1.0.0 was successfully promoted to stable"
    ]
    command = Command.objects.get(namespace="ns", name="cmd")
    assert (command.format, command.pipeline_id, command.binary_size) == (
        "binary",
        owner.pk,
        len(GREET),
    )
    assert dict(CommandTag.objects.values_list("tag", "version")) == {
        "latest": "1.0.0",
        "stable": "1.0.0",
    }
    # A docker command, as the owner's build would publish it (the executor here cannot run it).
    Command.objects.create(
        namespace="ns", name="box", version="1.0.0", format="docker", spec={"image": "alpine"}
    )

    user = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": USER_YAML}, "user").checkout_url, user=alice
    )
    main = _wait(start_event(pipeline=user, start_from="~commit", creator=ALICE), "main")

    assert main.status == BuildStatus.FAILURE  # the docker command's step
    assert step_log(main, "run") == ["hello arg from ns/cmd"]
    assert step_log(main, "again") == ["hello world from ns/cmd"]
    assert [line.strip() for line in step_log(main, "logs")] == ["2"]
    assert step_log(main, "docker") == [
        "sd-cmd: ns/box is a docker command (image alpine), and a build cannot start "
        "containers here: publish it as a binary."
    ]
