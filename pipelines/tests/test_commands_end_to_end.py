"""Commands on real builds behind the real ASGI server: one pipeline publishes binary, habitat and
docker commands with `sd-cmd publish`, another pipeline's steps run them with `sd-cmd exec`.

`hab` is an outside program: the user's build writes a stand-in that prints its arguments."""

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
HAB_LOCAL = """\
namespace: ns
name: hab
version: '2.1'
description: A local Habitat package
maintainer: alice@example.com
format: habitat
habitat:
  mode: local
  file: ./pkg/hello.hart
  package: core/hello
  command: hello
"""
HAB_REMOTE = """\
namespace: ns
name: git
version: '1'
description: Git from the Habitat depot
maintainer: alice@example.com
format: habitat
habitat:
  mode: remote
  package: core/git/2.14.1
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
  command: echo
"""
PUBLISHER = """\
jobs:
  publish:
    image: alpine
    requires: [~commit]
    steps:
      - validate: sd-cmd validate -f commands/sd-command.yaml
      - publish: sd-cmd publish -f commands/sd-command.yaml
      - promote: sd-cmd promote ns/cmd 1.0.0 stable
      - habitat: sd-cmd publish -f hab/sd-command.yaml && sd-cmd publish -f hab/remote.yaml
      - docker: sd-cmd publish -f docker.yaml
"""
# Screwdriver's images carry `hab`; this one prints its arguments instead.
FAKE_HAB = '#!/bin/sh\nfor a in "$@"; do echo "hab: $a"; done\n'

USER_YAML = """\
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - run: sd-cmd exec ns/cmd@1 arg
      - again: sd-cmd exec ns/cmd@stable world
      - logs: ls "$SD_ARTIFACTS_DIR/.sd/commands/ns/cmd" | wc -l
      - nohab: sd-cmd exec ns/hab@2 world || echo "exit $?"
      - hab: |
          mkdir -p "$SD_ROOT_DIR/tools" && cp tools/hab "$SD_ROOT_DIR/tools/hab"
          chmod +x "$SD_ROOT_DIR/tools/hab" && export PATH="$SD_ROOT_DIR/tools:$PATH"
          sd-cmd exec ns/hab@2 "two words" -v
      - remote: sd-cmd exec ns/git@latest --version
      - habdebug: cat "$SD_ARTIFACTS_DIR"/.sd/commands/ns/hab/*.log | cut -d' ' -f2-
      - nodocker: |
          mkdir -p empty
          PATH="$PWD/empty" "$(command -v sd-cmd)" exec ns/box@1 || echo "exit $?"
"""


# Sandboxed steps ask the launcher through a shell client; unsandboxed ones run sd-cmd itself.
@pytest.fixture(params=["auto", "none"], ids=["sandbox-auto", "no-sandbox"])
def server(
    request: pytest.FixtureRequest, transactional_db: None, tmp_path: Path
) -> Iterator[LiveStack]:
    stack = LiveStack.start(
        database_url=database_url(),
        data_dir=tmp_path / "sd-data",
        secret_key=django_settings.SECRET_KEY,
        extra_env={"SD_BUILD_LEASE_SECONDS": "4", "SD_LOCAL_SANDBOX": request.param},
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


def test_a_build_publishes_commands_that_another_pipeline_runs(
    request: pytest.FixtureRequest, server: LiveStack, make_repo: Callable[..., GitRepo]
) -> None:
    alice = User.objects.create_user(username="alice")
    source = make_repo(
        {
            "screwdriver.yaml": PUBLISHER,
            "commands/sd-command.yaml": SD_COMMAND,
            "commands/greet.sh": GREET,
            "hab/sd-command.yaml": HAB_LOCAL,
            "hab/pkg/hello.hart": "not a real package archive\n",
            "hab/remote.yaml": HAB_REMOTE,
            "docker.yaml": DOCKER,
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
    assert dict(CommandTag.objects.filter(name="cmd").values_list("tag", "version")) == {
        "latest": "1.0.0",
        "stable": "1.0.0",
    }
    formats = {c.name: (c.format, c.binary_size) for c in Command.objects.exclude(name="cmd")}
    assert formats == {"hab": ("habitat", 27), "git": ("habitat", 0), "box": ("docker", 0)}

    user = create_pipeline(
        checkout_url=make_repo(
            {"screwdriver.yaml": USER_YAML, "tools/hab": FAKE_HAB}, "user"
        ).checkout_url,
        user=alice,
    )
    main = _wait(start_event(pipeline=user, start_from="~commit", creator=ALICE), "main")

    assert main.status == BuildStatus.SUCCESS, main.status_message
    assert step_log(main, "run") == ["hello arg from ns/cmd"]
    assert step_log(main, "again") == ["hello world from ns/cmd"]
    assert [line.strip() for line in step_log(main, "logs")] == ["2"]
    assert step_log(main, "nohab") == [
        "sd-cmd: ns/hab is a habitat command (package core/hello), but this build has no `hab` "
        "on its PATH: use a job image with Habitat installed, or publish the command as a binary.",
        "exit 1",
    ]
    # As Screwdriver's sd-cmd: install the fetched package file, then exec package and command.
    hab = step_log(main, "hab")
    archive = hab[2].removeprefix("hab: ")
    assert archive.endswith("/.sd-cmd/ns/hab/2.1.0/hello.hart"), archive
    assert hab == [
        "hab: pkg",
        "hab: install",
        f"hab: {archive}",
        "hab: pkg",
        "hab: exec",
        "hab: core/hello",
        "hab: hello",
        "hab: two words",
        "hab: -v",
    ]
    assert step_log(main, "remote") == [
        "hab: pkg",
        "hab: install",
        "hab: core/git/2.14.1",
        "hab: pkg",
        "hab: exec",
        "hab: core/git/2.14.1",
        "hab: git",
        "hab: --version",
    ]
    debug = step_log(main, "habdebug")
    assert "sd-cmd exec ns/hab@2: version 2.1.0, format habitat" in debug
    assert any(line.startswith("fetched 27 bytes to ") for line in debug), debug
    assert len([line for line in debug if "format habitat" in line]) == 2, debug
    if request.node.callspec.params["server"] == "none":
        # sd-cmd ran in the step and saw hab's exit status; a shell client's launcher cannot.
        assert debug[-1].startswith("ran "), debug
        assert debug[-1].endswith(" pkg exec core/hello hello with 2 argument(s): exit 0"), debug
    # Sandboxed, the launcher answers (no socket there); else the step finds no client.
    no_client = (
        "sd-cmd: ns/box is a docker command (image alpine:3), but this build has no `docker` "
        "client on its PATH: run the job where builds may start containers, or publish the "
        "command as a binary."
    )
    refusal, code = step_log(main, "nodocker")
    assert code == "exit 1"
    assert refusal in {
        "sd-cmd: ns/box is a docker command (image alpine:3), but this build runs in a container "
        "or a sandbox, which cannot reach a Docker engine: publish the command as a binary, or "
        "use the image as the job's image.",
        no_client,
    }
    if request.node.callspec.params["server"] == "none":
        assert refusal == no_client
