"""How sd-cmd exec turns habitat and docker commands into argv lists, and the sentences it says
where it cannot run them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from executors.launcher.command_api import CommandError
from executors.launcher.command_formats import (
    container_habitat,
    docker_argv,
    find_docker,
    find_hab,
    habitat_plan,
)

REMOTE_SECTION = {"mode": "remote", "package": "core/git", "command": "git"}
REMOTE = {"format": "habitat", "habitat": REMOTE_SECTION}
LOCAL = {
    "format": "habitat",
    "habitat": {"mode": "local", "package": "core/x", "command": "x", "file": "./x.hart"},
}


def test_a_remote_habitat_command_installs_its_package_then_runs_it() -> None:
    assert habitat_plan("ns/git", REMOTE, None) == [
        ["pkg", "install", "core/git"],
        ["pkg", "exec", "core/git", "git"],
    ]


def test_a_local_habitat_command_installs_the_fetched_archive() -> None:
    archive = Path("/ws/.sd-cmd/ns/x/1.0.0/x.hart")

    assert habitat_plan("ns/x", LOCAL, archive)[0] == ["pkg", "install", str(archive)]
    with pytest.raises(CommandError):
        habitat_plan("ns/x", LOCAL, None)


@pytest.mark.parametrize("field", ["package", "command"])
def test_it_refuses_habitat_values_that_hab_would_read_as_options(field: str) -> None:
    spec = {"habitat": {**REMOTE_SECTION, field: "--url=http://elsewhere"}}

    with pytest.raises(CommandError, match="may not start with '-'"):
        habitat_plan("ns/git", spec, None)


def test_the_launchers_habitat_answer_is_five_lines_without_control_characters() -> None:
    answer = container_habitat("ns/git", REMOTE, None).splitlines()

    assert answer[:4] == ["habitat", "core/git", "core/git", "git"]
    assert answer[4].startswith("ns/git is a habitat command (package core/git), but ")
    broken = {"habitat": {**REMOTE_SECTION, "command": "git\nrm -rf /"}}
    with pytest.raises(CommandError, match="control characters"):
        container_habitat("ns/git", broken, None)


def test_a_docker_command_runs_its_image_with_the_build_variables_by_name(tmp_path: Path) -> None:
    command = {"format": "docker", "docker": {"image": "alpine:3", "command": "git"}}
    environ = {"SD_BUILD_ID": "7", "SD_TOKEN": "secret", "CI": "true", "HOME": "/root"}
    cwd = tmp_path / "src"

    argv = docker_argv(command, ["log", "; rm -rf /"], environ, cwd, tmp_path)

    uid_gid = f"{os.getuid()}:{os.getgid()}"
    assert argv == [
        "docker", "run", "--rm", "--interactive", "--user", uid_gid,
        "--env", "CI", "--env", "SD_BUILD_ID", "--env", "SD_TOKEN",
        "--volume", f"{tmp_path}:{tmp_path}", "--workdir", str(cwd),
        "alpine:3", "git", "log", "; rm -rf /",
    ]  # fmt: skip
    assert "secret" not in " ".join(argv)


def test_a_docker_command_outside_the_workspace_starts_at_its_root(tmp_path: Path) -> None:
    command = {"docker": {"image": "alpine:3"}}

    argv = docker_argv(command, [], {}, Path("/elsewhere"), tmp_path)

    assert argv[-3:] == ["--workdir", str(tmp_path), "alpine:3"]
    with pytest.raises(CommandError):
        docker_argv({"docker": {"image": "--privileged"}}, [], {}, tmp_path, tmp_path)


def test_without_hab_or_docker_on_path_it_says_so_in_one_sentence(tmp_path: Path) -> None:
    environ = {"PATH": str(tmp_path)}

    with pytest.raises(CommandError) as hab:
        find_hab("ns/git", REMOTE, environ)
    with pytest.raises(CommandError) as docker:
        find_docker("ns/box", {"docker": {"image": "alpine:3"}}, environ)

    assert str(hab.value) == (
        "ns/git is a habitat command (package core/git), but this build has no `hab` on its "
        "PATH: use a job image with Habitat installed, or publish the command as a binary."
    )
    assert str(docker.value).startswith(
        "ns/box is a docker command (image alpine:3), but this build has no `docker` client"
    )


def test_a_hab_on_path_is_found(tmp_path: Path) -> None:
    hab = tmp_path / "hab"
    hab.write_text("#!/bin/sh\n")
    hab.chmod(0o755)

    assert find_hab("ns/git", REMOTE, {"PATH": str(tmp_path)}) == str(hab)


def test_a_docker_client_without_an_engine_is_refused(tmp_path: Path) -> None:
    client = shutil.which("docker")
    if client is None:
        pytest.skip("No docker client on PATH: install the Docker CLI.")
    environ = {
        "PATH": str(Path(client).parent),
        "HOME": str(tmp_path),
        "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
    }

    with pytest.raises(CommandError, match="cannot reach a Docker engine"):
        find_docker("ns/box", {"docker": {"image": "alpine:3"}}, environ)
