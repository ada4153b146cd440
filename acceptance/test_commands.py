"""A command published by one pipeline's build (`sd-cmd publish`) runs in another pipeline's
step (`sd-cmd exec`), as a user of `make run` meets it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from acceptance.stack import Stack, finished, first_build, git, log_lines, start

pytestmark = pytest.mark.xdist_group("builds")

SD_COMMAND = """\
namespace: acme
name: hello
version: '1'
description: Greets its first argument
maintainer: alice@example.com
format: binary
binary:
  file: ./hello.sh
"""
PUBLISHER = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - publish: sd-cmd publish
"""
USER = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - hello: sd-cmd exec acme/hello@1 world
"""


def test_a_published_command_runs_in_another_pipelines_step(
    stack: Stack, repo: Callable[..., tuple[Path, Path]]
) -> None:
    bare, work = repo(PUBLISHER, name="hello-command")
    (work / "sd-command.yaml").write_text(SD_COMMAND)
    (work / "hello.sh").write_text('#!/bin/sh\necho "hello $1"\n')
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "the command", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    row = first_build(stack, start(stack, bare))
    ended = finished(stack, row["id"], timeout=120)
    assert ended["status"] == "SUCCESS", log_lines(stack, row["id"], "publish")
    assert log_lines(stack, row["id"], "publish") == [
        "Command acme/hello@1.0.0 was successfully published and tagged as latest"
    ]
    found = stack.api().get("/commands/acme/hello/latest")
    assert found.status_code == 200, found.text
    assert (found.json()["format"], found.json()["version"]) == ("binary", "1.0.0")

    user_bare, _ = repo(USER, name="hello-user")
    used = first_build(stack, start(stack, user_bare))
    assert finished(stack, used["id"], timeout=120)["status"] == "SUCCESS"
    assert log_lines(stack, used["id"], "hello") == ["hello world"]
