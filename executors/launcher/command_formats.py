"""How `sd-cmd exec` runs the habitat and docker formats, as Screwdriver's design describes them.

- habitat: `hab pkg install PACKAGE` (or the downloaded `.hart` of a local-mode command), then
  `hab pkg exec PACKAGE COMMAND ARGS...`, as Screwdriver's sd-cmd does.
- docker: `docker run --rm --interactive IMAGE [COMMAND] ARGS...` with the build's `SD_*`
  variables, the workspace mounted at its own path and the step's directory as the workdir.

Every program is started from an argv list: values from a command's spec or a step's arguments
never pass through a shell. Where the tool or the Docker engine is missing, the step fails with
one sentence that says why (a CommandError).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .command_api import CommandError

# The variables a docker command's container gets besides SD_*, as a build's steps have them.
BUILD_FLAGS = ("CI", "CONTINUOUS_INTEGRATION", "SCREWDRIVER")
# Asking the engine for its version is quick; a missing or hung engine must not hold the step.
PROBE_SECONDS = 30


def _text(section: Mapping[str, Any], key: str) -> str:
    value = section.get(key)
    return value if isinstance(value, str) else ""


def habitat_plan(name: str, command: Mapping[str, Any], archive: Path | None) -> list[list[str]]:
    """The `hab` argvs (without the program) of a habitat command: install, then exec."""
    section = command.get("habitat") or {}
    package, executable = _text(section, "package"), _text(section, "command")
    if not package or not executable:
        raise CommandError(f"{name} is a habitat command without a package and a command.")
    if package.startswith("-") or executable.startswith("-"):
        # hab would read them as its own options.
        raise CommandError(f"{name}'s habitat package and command may not start with '-'.")
    if section.get("mode") == "local":
        if archive is None:
            raise CommandError(f"{name} is a local habitat command without its package file.")
        install = str(archive)
    else:
        install = package
    return [["pkg", "install", install], ["pkg", "exec", package, executable]]


def docker_image(command: Mapping[str, Any]) -> tuple[str, str]:
    """A docker command's image and its optional executable."""
    section = command.get("docker") or {}
    return _text(section, "image"), _text(section, "command")


def docker_argv(
    command: Mapping[str, Any],
    args: list[str],
    environ: Mapping[str, str],
    cwd: Path,
    root: Path,
) -> list[str]:
    """`docker run ...` for a docker command (the program name included)."""
    image, executable = docker_image(command)
    if not image or image.startswith("-"):
        raise CommandError(f"{image!r} is not a Docker image name.")
    workdir = cwd if cwd.is_relative_to(root) else root
    argv = ["docker", "run", "--rm", "--interactive"]
    # Files the command writes into the workspace belong to the build, not to root.
    argv += ["--user", f"{os.getuid()}:{os.getgid()}"]
    # `--env NAME` without a value: docker takes it from this process, so no value is copied.
    names = sorted(n for n in environ if n.startswith("SD_") or n in BUILD_FLAGS)
    for variable in names:
        argv += ["--env", variable]
    argv += ["--volume", f"{root}:{root}", "--workdir", str(workdir)]
    argv.append(image)
    if executable:
        argv.append(executable)
    return argv + list(args)


def hab_missing(name: str, command: Mapping[str, Any]) -> str:
    """Why a habitat command cannot run where `hab` is not on PATH."""
    package = _text(command.get("habitat") or {}, "package")
    return (
        f"{name} is a habitat command (package {package}), but this build has no `hab` on "
        "its PATH: use a job image with Habitat installed, or publish the command as a binary."
    )


def find_hab(name: str, command: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """The `hab` on the build's PATH, or a CommandError saying it is missing."""
    found = shutil.which("hab", path=environ.get("PATH"))
    if found is None:
        raise CommandError(hab_missing(name, command))
    return found


def container_habitat(name: str, command: Mapping[str, Any], archive: Path | None) -> str:
    """The launcher's answer for a habitat command in a container: lines the shell client reads.

    `habitat`, what to install, the package, its executable and the sentence to print when the
    image has no `hab`; a value that would break the lines is refused.
    """
    install, run_it = habitat_plan(name, command, archive)
    lines = ["habitat", install[2], run_it[2], run_it[3], hab_missing(name, command)]
    if any(not line or any(ord(c) < 32 or ord(c) == 127 for c in line) for line in lines):
        raise CommandError(f"{name}'s habitat package or command holds control characters.")
    return "\n".join(lines) + "\n"


def find_docker(name: str, command: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """The `docker` client on PATH when it reaches an engine, else a CommandError saying why."""
    image = docker_image(command)[0]
    found = shutil.which("docker", path=environ.get("PATH"))
    if found is None:
        raise CommandError(
            f"{name} is a docker command (image {image}), but this build has no `docker` client "
            "on its PATH: run the job where builds may start containers, or publish the command "
            "as a binary."
        )
    try:
        probe = subprocess.run(
            [found, "version", "--format", "{{.Server.Version}}"],
            env=dict(environ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=PROBE_SECONDS,
            check=False,
        )
        reached = probe.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        reached = False
    if not reached:
        raise CommandError(
            f"{name} is a docker command (image {image}), but this build cannot reach a Docker "
            "engine (builds may start containers only on the local executor without its "
            "sandbox): publish the command as a binary, or use the image as the job's image."
        )
    return found


def container_refusal(name: str, command: Mapping[str, Any]) -> str:
    """Why a docker command cannot run in a container or sandbox (neither has a Docker socket)."""
    image = docker_image(command)[0]
    return (
        f"{name} is a docker command (image {image}), but this build runs in a container or a "
        "sandbox, which cannot reach a Docker engine: publish the command as a binary, or use "
        "the image as the job's image."
    )
