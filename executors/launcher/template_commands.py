"""The template-* and pipeline-template-* commands a build finds on its PATH.

The commands Screwdriver's template images provide, on a build's PATH: they read
`./sd-template.yaml` (or `$SD_TEMPLATE_PATH`) and call the API with the build's token. This file
is also copied into a build's `bin/` and run there (see command_api.py).
In a container the commands are shell clients and the launcher runs this code for them (see
metaserver.py): the image needs only /bin/sh.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .command_api import CommandError, call, out, parse_options, segment
from .command_api import install as install_commands

COMMANDS = (
    "template-validate",
    "template-publish",
    "template-tag",
    "template-remove-tag",
    "template-remove",
    "pipeline-template-validate",
    "pipeline-template-publish",
    "pipeline-template-tag",
    "pipeline-template-remove-tag",
    "pipeline-template-remove",
)
DEFAULT_PATH = "./sd-template.yaml"
# What the shell client sends first, so the launcher tells it from a `meta` request.
MARKER = "--sd-template-command"
USAGE = {
    "template-validate": "usage: template-validate [--json]",
    "template-publish": "usage: template-publish [--tag TAG] [--json]",
    "template-tag": "usage: template-tag --name NAME --tag TAG [--version X.Y.Z] [--json]",
    "template-remove-tag": "usage: template-remove-tag --name NAME --tag TAG [--json]",
    "template-remove": "usage: template-remove --name NAME [--json]",
    "pipeline-template-validate": "usage: pipeline-template-validate [--json]",
    "pipeline-template-publish": "usage: pipeline-template-publish [--tag TAG] [--json]",
    "pipeline-template-tag": "usage: pipeline-template-tag --namespace NS --name NAME --tag TAG "
    "[--version X.Y.Z] [--json]",
    "pipeline-template-remove-tag": "usage: pipeline-template-remove-tag --namespace NS "
    "--name NAME --tag TAG [--json]",
    "pipeline-template-remove": "usage: pipeline-template-remove --namespace NS --name NAME "
    "[--json]",
}


SHORT = {"-t": "tag", "-n": "name", "-v": "version", "-j": "json"}


def _options(argv: list[str], allowed: set[str]) -> dict[str, str]:
    return parse_options(argv, allowed, SHORT)


def _full_name(template: Mapping[str, Any]) -> str:
    namespace, name = template.get("namespace"), template.get("name")
    return f"{namespace}/{name}" if namespace and namespace != "default" else str(name)


def run(
    command: str,
    argv: list[str],
    environ: Mapping[str, str],
    yaml_text: str | None,
    path: str,
) -> tuple[int, str, str]:
    """Run one template command; `yaml_text` is the template file's text (None if unreadable)."""
    if command.startswith("pipeline-"):
        return _run_pipeline_command(command, argv, environ, yaml_text, path)
    try:
        if command == "template-validate":
            options = _options(argv, {"json"})
            text = _require(yaml_text, path)
            result = call(environ, "POST", "/validator/template", {"yaml": text})
            return _validate_errors(result) or (0, out(result, "Template is valid", options), "")
        if command == "template-publish":
            options = _options(argv, {"json", "tag"})
            text = _require(yaml_text, path)
            published = call(environ, "POST", "/templates", {"yaml": text})
            tag = options.get("tag", "latest")
            name = _full_name(published)
            version = published["version"]
            call(
                environ,
                "PUT",
                f"/templates/{segment(name)}/tags/{segment(tag)}",
                {"version": version},
            )
            result = {"name": name, "version": version, "tag": tag}
            message = f"Template {name}@{version} was successfully published and tagged as {tag}"
            return 0, out(result, message, options), ""
        if command == "template-tag":
            options = _options(argv, {"json", "name", "tag", "version"})
            name, tag = _required(options, "name"), _required(options, "tag")
            version = options.get("version")
            if not version:
                # No version: the most recently published one, as Screwdriver's tool does.
                newest = call(environ, "GET", f"/templates/{segment(name)}?count=1")
                version = str(newest[0]["version"])
            call(
                environ,
                "PUT",
                f"/templates/{segment(name)}/tags/{segment(tag)}",
                {"version": version},
            )
            result = {"name": name, "version": version, "tag": tag}
            message = f"Template {name}@{version} was successfully tagged as {tag}"
            return 0, out(result, message, options), ""
        if command == "template-remove-tag":
            options = _options(argv, {"json", "name", "tag"})
            name, tag = _required(options, "name"), _required(options, "tag")
            call(environ, "DELETE", f"/templates/{segment(name)}/tags/{segment(tag)}")
            result = {"name": name, "tag": tag}
            return 0, out(result, f"Tag {tag} was successfully removed from {name}", options), ""
        if command == "template-remove":
            options = _options(argv, {"json", "name"})
            name = _required(options, "name")
            call(environ, "DELETE", f"/templates/{segment(name)}")
            return 0, out({"name": name}, f"Template {name} was successfully removed", options), ""
    except ValueError:
        return 2, "", USAGE.get(command, "unknown template command") + "\n"
    except CommandError as exc:
        return 1, "", f"{command}: {exc}\n"
    return 2, "", f"unknown template command {command}\n"


def _validate_errors(result: Mapping[str, Any]) -> tuple[int, str, str] | None:
    errors = result.get("errors") or []
    if not errors:
        return None
    lines = [f"  {e.get('message')}" for e in errors]
    return 1, "", "Template is not valid for the following reasons:\n" + "\n".join(lines) + "\n"


def _run_pipeline_command(
    command: str, argv: list[str], environ: Mapping[str, str], yaml_text: str | None, path: str
) -> tuple[int, str, str]:
    """The pipeline-template-* commands: the same, under /pipeline/template(s)."""
    try:
        if command == "pipeline-template-validate":
            options = _options(argv, {"json"})
            text = _require(yaml_text, path)
            result = call(environ, "POST", "/pipeline/template/validate", {"yaml": text})
            return _validate_errors(result) or (
                0,
                out(result, "Pipeline template is valid", options),
                "",
            )
        if command == "pipeline-template-publish":
            options = _options(argv, {"json", "tag"})
            text = _require(yaml_text, path)
            published = call(environ, "POST", "/pipeline/template", {"yaml": text})
            template = call(environ, "GET", f"/pipeline/template/{int(published['templateId'])}")
            namespace, name = str(template["namespace"]), str(template["name"])
            version, tag = str(published["version"]), options.get("tag", "latest")
            call(
                environ,
                "PUT",
                f"{_pipeline_path(namespace, name)}/tags/{segment(tag)}",
                {"version": version},
            )
            full = f"{namespace}/{name}"
            result = {"namespace": namespace, "name": name, "version": version, "tag": tag}
            message = (
                f"Pipeline template {full}@{version} was successfully published and tagged as {tag}"
            )
            return 0, out(result, message, options), ""
        options = _options(argv, {"json", "namespace", "name", "tag", "version"})
        namespace, name = _required(options, "namespace"), _required(options, "name")
        base, full = _pipeline_path(namespace, name), f"{namespace}/{name}"
        plural = _pipeline_path(namespace, name, plural=True)
        if command == "pipeline-template-tag":
            tag = _required(options, "tag")
            # No version: the most recently published one, as Screwdriver's tool does.
            version = options.get("version") or str(
                call(environ, "GET", f"{plural}/versions?count=1")[0]["version"]
            )
            call(environ, "PUT", f"{base}/tags/{segment(tag)}", {"version": version})
            result = {"namespace": namespace, "name": name, "version": version, "tag": tag}
            message = f"Pipeline template {full}@{version} was successfully tagged as {tag}"
            return 0, out(result, message, options), ""
        if command == "pipeline-template-remove-tag":
            tag = _required(options, "tag")
            call(environ, "DELETE", f"{plural}/tags/{segment(tag)}")
            result = {"namespace": namespace, "name": name, "tag": tag}
            return 0, out(result, f"Tag {tag} was successfully removed from {full}", options), ""
        if command == "pipeline-template-remove":
            call(environ, "DELETE", plural)
            message = f"Pipeline template {full} was successfully removed"
            return 0, out({"namespace": namespace, "name": name}, message, options), ""
    except ValueError:
        return 2, "", USAGE.get(command, "unknown template command") + "\n"
    except CommandError as exc:
        return 1, "", f"{command}: {exc}\n"
    return 2, "", f"unknown template command {command}\n"


def _pipeline_path(namespace: str, name: str, *, plural: bool = False) -> str:
    """Screwdriver tags under the singular path, lists and removes under the plural one."""
    root = "/pipeline/templates" if plural else "/pipeline/template"
    return f"{root}/{segment(namespace)}/{segment(name)}"


def _require(yaml_text: str | None, path: str) -> str:
    if yaml_text is None:
        raise CommandError(f"cannot read {path}: set SD_TEMPLATE_PATH or add the file.")
    return yaml_text


def _required(options: Mapping[str, str], key: str) -> str:
    value = options.get(key)
    if not value:
        raise ValueError(key)
    return value


def read_template(environ: Mapping[str, str]) -> tuple[str, str | None]:
    """The template file's path and text (None when it cannot be read)."""
    path = environ.get("SD_TEMPLATE_PATH") or DEFAULT_PATH
    try:
        return path, Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return path, None


def main(command: str, argv: list[str]) -> int:
    """Run a command in this process, reading the file itself."""
    path, text = read_template(os.environ)
    code, out, err = run(command, argv, os.environ, text, path)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


def install(bin_dir: Path, python: str | None = None) -> list[Path]:
    """Write the commands into `bin_dir`; they need a Python interpreter (the launcher's)."""
    return install_commands(bin_dir, dict.fromkeys(COMMANDS, "template_commands"), python)


SHELL_CLIENT = """#!/bin/sh
# %(command)s: the launcher runs it (see docs/templates.md); this client sends it the file.
f=${SD_TEMPLATE_PATH:-%(default)s}
r=0
y=
if [ -r "$f" ] && [ -f "$f" ]; then
  r=1
  y=$(while IFS= read -r l || [ -n "$l" ]; do printf '%%s\\n' "$l"; done <"$f")
fi
set -- %(marker)s %(command)s "$f" "$r" "$y" "$@"
"""


def shell_client(command: str, meta_client: str) -> str:
    """The client of `command` for a container: file reading, then `meta`'s FIFO protocol."""
    body = meta_client.split("\n", 1)[1]  # the meta client without its #! line
    head = SHELL_CLIENT % {"command": command, "default": DEFAULT_PATH, "marker": MARKER}
    return head + body
