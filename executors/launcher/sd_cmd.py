"""`sd-cmd` on a build's PATH: run, publish, validate and promote Screwdriver commands.

`sd-cmd exec NS/NAME@VERSION ARGS...` asks the API which version the reference picks, fetches
its binary once per build into the workspace (`.sd-cmd/NS/NAME/VERSION/`), runs it with ARGS in
the step (its output is the step's log) and writes what it did to a debug log under
`$SD_ARTIFACTS_DIR/.sd/commands/NS/NAME/`; habitat and docker commands run through `hab` and
`docker` (command_formats.py). In a container the shell client asks the launcher to fetch the
binary (see metaserver.py) and runs it itself, so the image needs only /bin/sh.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .command_api import CommandError, call, download, out, parse_options, post_multipart, segment
from .command_api import install as install_commands
from .command_formats import docker_argv, find_docker, find_hab, habitat_plan
from .confined import Confined

COMMAND = "sd-cmd"
# What the shell client sends first, so the launcher tells it from a `meta` request.
MARKER = "--sd-cmd"
REFERENCE = re.compile(r"^([\w-]{1,64})/([\w-]{1,64})@([\w.-]{1,30})\Z", re.ASCII)
FULL_NAME = re.compile(r"^([\w-]{1,64})/([\w-]{1,64})\Z", re.ASCII)
DEFAULT_SPEC = "sd-command.yaml"
USAGE = (
    "usage: sd-cmd exec NAMESPACE/NAME@VERSION [ARGS...]\n"
    "       sd-cmd publish [-f sd-command.yaml] [-t TAG] [--json]\n"
    "       sd-cmd validate [-f sd-command.yaml] [--json]\n"
    "       sd-cmd promote NAMESPACE/NAME VERSION TAG [--json]\n"
)
# A spec or a binary the launcher reads for a container's `sd-cmd publish`.
MAX_UPLOAD_BYTES = 256 * 1024 * 1024
SHORT = {"-f": "file", "-t": "tag", "-j": "json"}


@dataclass(frozen=True)
class Place:
    """Where exec keeps binaries and debug logs, each below a tree opened without links."""

    binaries: Confined
    binaries_dir: Path
    logs: Confined
    logs_dir: Path


def _reference(text: str) -> tuple[str, str, str]:
    match = REFERENCE.match(text)
    if match is None:
        raise CommandError(
            f"{text!r} is not a command reference: write NAMESPACE/NAME@VERSION (or @TAG)."
        )
    return match.group(1), match.group(2), match.group(3)


@dataclass(frozen=True)
class Prepared:
    """What `exec` found: the API's answer, the file it fetched (if any) and a log of it."""

    name: str
    command: dict[str, Any]
    path: Path | None
    log: list[str]

    @property
    def form(self) -> str:
        return str(self.command.get("format"))


def prepare(reference: str, environ: Mapping[str, str], place: Place) -> Prepared:
    """The command `reference` picks, with its file fetched once per build when it has one."""
    namespace, name, wanted = _reference(reference)
    where = f"/commands/{segment(namespace)}/{segment(name)}/{segment(wanted)}"
    command = call(environ, "GET", where)
    version, form = str(command["version"]), str(command.get("format"))
    log = [f"sd-cmd exec {namespace}/{name}@{wanted}: version {version}, format {form}"]
    full = f"{namespace}/{name}"
    section = command.get(form) or {}
    if form == "docker" or (form == "habitat" and section.get("mode") != "local"):
        return Prepared(full, command, None, log)
    if form not in ("binary", "habitat"):
        raise CommandError(f"{full} has the format {form!r}, which sd-cmd cannot run.")
    base = posixpath.basename(str(section.get("file") or "")) or name
    if base in ("", ".", ".."):
        base = name
    target = place.binaries_dir / namespace / name / version / base
    if place.binaries.is_file(target):
        log.append(f"file already in the workspace at {target}")
        return Prepared(full, command, target, log)
    with place.binaries.directory(target.parent, create=True):
        pass
    fd = place.binaries.create(target, 0o755)
    size = 0
    try:
        for chunk in download(environ, f"{where}/binary"):
            size += len(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
    except BaseException:
        place.binaries.unlink(target)
        raise
    finally:
        os.close(fd)
    log.append(f"fetched {size} bytes to {target}")
    return Prepared(full, command, target, log)


def execute(prepared: Prepared, args: list[str], environ: Mapping[str, str]) -> tuple[int, str]:
    """Run a prepared command in this process's step; its exit status and a line for the log."""
    if prepared.form == "habitat":
        hab = find_hab(prepared.name, prepared.command, environ)
        install, run_it = habitat_plan(prepared.name, prepared.command, prepared.path)
        code = subprocess.run([hab, *install], check=False).returncode
        if code != 0:
            return code, f"ran {hab} {shlex.join(install)}: exit {code}"
        argv = [hab, *run_it, *args]
    elif prepared.form == "docker":
        docker = find_docker(prepared.name, prepared.command, environ)
        root = Path(environ.get("SD_ROOT_DIR") or Path.cwd())
        argv = docker_argv(prepared.command, args, environ, Path.cwd(), root)
        argv[0] = docker
    elif prepared.path is not None:
        argv = [str(prepared.path), *args]
    else:
        raise CommandError(f"{prepared.name} has no file to run.")
    code = subprocess.run(argv, check=False).returncode
    shown = shlex.join(argv[: len(argv) - len(args)])
    return code, f"ran {shown} with {len(args)} argument(s): exit {code}"


def write_log(place: Place, namespace_name: str, lines: list[str]) -> None:
    """Write exec's debug log: `.sd/commands/NS/NAME/<UTC time>.log` of the artifacts."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time() % 1:.6f}"[1:]
    folder = place.logs_dir / namespace_name
    try:
        with place.logs.directory(folder, create=True):
            pass
        text = "".join(f"{time.strftime('%H:%M:%S', time.gmtime())} {line}\n" for line in lines)
        place.logs.write(folder / f"{stamp}.log", text.encode("utf-8"), 0o644)
    except (OSError, ValueError):
        pass  # a debug log is not worth failing the step for


def run(
    argv: list[str],
    environ: Mapping[str, str],
    read: ReadFile,
) -> tuple[int, str, str]:
    """Run publish, validate or promote (exec runs where the step runs: see `main`)."""
    try:
        action, rest = (argv[0], argv[1:]) if argv else ("", [])
        if action == "validate":
            options = parse_options(rest, {"file", "json"}, SHORT)
            text = read(options.get("file", DEFAULT_SPEC)).decode("utf-8", "replace")
            result = call(environ, "POST", "/validator/command", {"yaml": text})
            errors = result.get("errors") or []
            if errors:
                lines = "".join(f"  {e.get('message')}\n" for e in errors)
                return 1, "", f"Command is not valid for the following reasons:\n{lines}"
            return 0, out(result, "Command is valid", options), ""
        if action == "publish":
            options = parse_options(rest, {"file", "tag", "json"}, SHORT)
            spec_path = options.get("file", DEFAULT_SPEC)
            text = read(spec_path).decode("utf-8", "replace")
            checked = call(environ, "POST", "/validator/command", {"yaml": text})
            if checked.get("errors"):
                lines = "".join(f"  {e.get('message')}\n" for e in checked["errors"])
                return 1, "", f"Command is not valid for the following reasons:\n{lines}"
            spec = checked.get("command") or {}
            files = {}
            section = spec.get(spec.get("format")) or {}
            if spec.get("format") == "binary" or section.get("mode") == "local":
                # The file is named relative to the spec, as Screwdriver's sd-cmd reads it.
                relative = posixpath.join(posixpath.dirname(spec_path), str(section.get("file")))
                files["file"] = read(relative)
            published = post_multipart(environ, "/commands", {"spec": text}, files)
            name = f"{published['namespace']}/{published['name']}"
            version, tag = str(published["version"]), options.get("tag", "latest")
            _tag(environ, name, version, tag)
            result = {"namespace": published["namespace"], "name": published["name"]}
            result |= {"version": version, "tag": tag}
            message = f"Command {name}@{version} was successfully published and tagged as {tag}"
            return 0, out(result, message, options), ""
        if action == "promote":
            positional = [a for a in rest if not a.startswith("-")]
            options = parse_options([a for a in rest if a.startswith("-")], {"json"}, SHORT)
            if len(positional) != 3 or not FULL_NAME.match(positional[0]):
                raise ValueError("promote")
            name, target, tag = positional
            namespace, short = name.split("/")
            picked = call(
                environ, "GET", f"/commands/{segment(namespace)}/{segment(short)}/{segment(target)}"
            )
            version = str(picked["version"])
            _tag(environ, name, version, tag)
            result = {"name": name, "version": version, "tag": tag}
            message = f"Command {name}@{version} was successfully promoted to {tag}"
            return 0, out(result, message, options), ""
    except ValueError:
        return 2, "", USAGE
    except CommandError as exc:
        return 1, "", f"sd-cmd: {exc}\n"
    return 2, "", USAGE


def _tag(environ: Mapping[str, str], name: str, version: str, tag: str) -> None:
    namespace, short = name.split("/")
    call(
        environ,
        "PUT",
        f"/commands/{segment(namespace)}/{segment(short)}/tags/{segment(tag)}",
        {"version": version},
    )


class ReadFile:
    """Reads the files publish names, relative to the step's working directory."""

    def __init__(self, cwd: Path, tree: Confined | None = None) -> None:
        self.cwd = cwd
        self.tree = tree

    def __call__(self, name: str) -> bytes:
        path = Path(posixpath.normpath(str(self.cwd / name)))
        try:
            if self.tree is None:
                return path.read_bytes()
            # The launcher on the host reads a container's file only inside the workspace.
            if not path.is_relative_to(self.tree.root):
                raise CommandError(
                    f"cannot read {name}: in a container, it must be inside the build's workspace."
                )
            return self.tree.read(path, MAX_UPLOAD_BYTES)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {name}: {exc}") from None


def main(command: str, argv: list[str]) -> int:
    """Run `sd-cmd` in the step's own process (a build without a container)."""
    if argv[:1] != ["exec"]:
        code, stdout, stderr = run(argv, os.environ, ReadFile(Path.cwd()))
        sys.stdout.write(stdout)
        sys.stderr.write(stderr)
        return code
    if len(argv) < 2:
        sys.stderr.write(USAGE)
        return 2
    root = Path(os.environ.get("SD_ROOT_DIR") or Path.cwd())
    artifacts = Path(os.environ.get("SD_ARTIFACTS_DIR") or root / "artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    with Confined(root) as binaries, Confined(artifacts) as logs:
        place = Place(binaries, root / ".sd-cmd", logs, artifacts / ".sd" / "commands")
        lines: list[str] = []
        name = argv[1].partition("@")[0]
        try:
            prepared = prepare(argv[1], os.environ, place)
            lines = prepared.log
            sys.stdout.flush()
            code, ran = execute(prepared, argv[2:], os.environ)
        except CommandError as exc:
            write_log(place, name, [*lines, f"error: {exc}"])
            sys.stderr.write(f"sd-cmd: {exc}\n")
            return 1
        write_log(place, name, [*lines, ran])
    return code


def install(bin_dir: Path, python: str | None = None) -> list[Path]:
    """Write `sd-cmd` into `bin_dir`; it needs a Python interpreter (the launcher's)."""
    return install_commands(bin_dir, {COMMAND: "sd_cmd"}, python)


SHELL_CLIENT = """#!/bin/sh
# sd-cmd: the launcher fetches a command's binary or calls the API (see docs/commands.md);
# this client runs the binary (or `hab`) in the step, so its output is the step's log.
_sd_ask() (
%(ask)s)
if [ "$1" = exec ] && [ $# -ge 2 ]; then
  _sd_bin=$(_sd_ask %(marker)s "$PWD" exec "$2") || exit "$?"
  shift 2
  case $_sd_bin in
  /*) exec "$_sd_bin" "$@" ;;
  esac
  # A habitat command: five lines (see command_formats.container_habitat), never evaluated.
  { IFS= read -r _ ; IFS= read -r _sd_install; IFS= read -r _sd_package
    IFS= read -r _sd_command; IFS= read -r _sd_missing; } <<_SD_EOF
$_sd_bin
_SD_EOF
  if ! command -v hab >/dev/null 2>&1; then
    printf 'sd-cmd: %%s\n' "$_sd_missing" >&2
    exit 1
  fi
  hab pkg install "$_sd_install" || exit "$?"
  exec hab pkg exec "$_sd_package" "$_sd_command" "$@"
fi
_sd_ask %(marker)s "$PWD" "$@"
"""


def shell_client(meta_client: str) -> str:
    """`sd-cmd` for a container: `meta`'s FIFO protocol, then exec of the fetched binary."""
    body = meta_client.split("\n", 1)[1]  # the meta client without its #! line
    return SHELL_CLIENT % {"ask": body, "marker": MARKER}
