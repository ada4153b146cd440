"""The template-* commands a build finds on its PATH (validate, publish, tag, remove).

The commands Screwdriver's template images provide, on a build's PATH: they read
`./sd-template.yaml` (or `$SD_TEMPLATE_PATH`) and call the API with the build's token. This file
is also copied into a build's `bin/` and run there, so it imports nothing but the standard library.
In a container the commands are shell clients and the launcher runs this code for them (see
metaserver.py): the image needs only /bin/sh.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

COMMANDS = (
    "template-validate",
    "template-publish",
    "template-tag",
    "template-remove-tag",
    "template-remove",
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
}


class CommandError(Exception):
    """Something to tell the user on stderr, with exit status 1."""


def _options(argv: list[str], allowed: set[str]) -> dict[str, str]:
    """`--key value`, `--key=value`, `-k value` and the `--json` / `-j` flag."""
    short = {"-t": "tag", "-n": "name", "-v": "version", "-j": "json"}
    options: dict[str, str] = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        key, eq, value = arg.partition("=")
        key = short.get(key, key.removeprefix("--"))
        if key not in allowed or not (arg.startswith("--") or arg in short):
            raise ValueError(arg)
        if key == "json":
            options["json"] = "true"
            continue
        if not eq:
            if not args:
                raise ValueError(arg)
            value = args.pop(0)
        options[key] = value
    return options


def _api(environ: Mapping[str, str], method: str, path: str, body: Any = None) -> Any:
    """Call the API with the build's token; return the JSON answer or raise CommandError."""
    api_url, token = environ.get("SD_API_URL", ""), environ.get("SD_TOKEN", "")
    if not api_url or not token:
        raise CommandError("SD_API_URL and SD_TOKEN must be set: run this in a build.")
    root = api_url.rstrip("/")
    root = root if root.endswith("/v4") else root + "/v4"
    if not root.startswith(("http://", "https://")):
        raise CommandError(f"SD_API_URL {api_url!r} is not an http(s) URL.")
    data = None if body is None else json.dumps(body).encode("utf-8")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(  # noqa: S310 - http(s) checked above
        root + path, data=data, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            raw = response.read()
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read().decode("utf-8"))
        except ValueError:
            answer = {}
        message = answer.get("message") if isinstance(answer, dict) else None
        raise CommandError(f"{exc.code} ({exc.reason}): {message or 'no message'}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise CommandError(f"cannot reach the API at {root}: {exc}") from exc
    return json.loads(raw.decode("utf-8")) if raw else None


def _name_path(name: str) -> str:
    """A template name as one path segment (`ns/tpl` travels as `ns%2Ftpl`)."""
    return urllib.parse.quote(name, safe="")


def _full_name(template: Mapping[str, Any]) -> str:
    namespace, name = template.get("namespace"), template.get("name")
    return f"{namespace}/{name}" if namespace and namespace != "default" else str(name)


def _out(result: Any, text: str, options: Mapping[str, str]) -> str:
    return (json.dumps(result) if options.get("json") else text) + "\n"


def run(
    command: str,
    argv: list[str],
    environ: Mapping[str, str],
    yaml_text: str | None,
    path: str,
) -> tuple[int, str, str]:
    """Run one template command; `yaml_text` is the template file's text (None if unreadable)."""
    try:
        if command == "template-validate":
            options = _options(argv, {"json"})
            text = _require(yaml_text, path)
            result = _api(environ, "POST", "/validator/template", {"yaml": text})
            errors = result.get("errors") or []
            if errors:
                lines = [f"  {e.get('message')}" for e in errors]
                return (
                    1,
                    "",
                    "Template is not valid for the following reasons:\n" + "\n".join(lines) + "\n",
                )
            return 0, _out(result, "Template is valid", options), ""
        if command == "template-publish":
            options = _options(argv, {"json", "tag"})
            text = _require(yaml_text, path)
            published = _api(environ, "POST", "/templates", {"yaml": text})
            tag = options.get("tag", "latest")
            name = _full_name(published)
            version = published["version"]
            _api(
                environ,
                "PUT",
                f"/templates/{_name_path(name)}/tags/{_name_path(tag)}",
                {"version": version},
            )
            result = {"name": name, "version": version, "tag": tag}
            message = f"Template {name}@{version} was successfully published and tagged as {tag}"
            return 0, _out(result, message, options), ""
        if command == "template-tag":
            options = _options(argv, {"json", "name", "tag", "version"})
            name, tag = _required(options, "name"), _required(options, "tag")
            version = options.get("version")
            if not version:
                # No version: the most recently published one, as Screwdriver's tool does.
                newest = _api(environ, "GET", f"/templates/{_name_path(name)}?count=1")
                version = str(newest[0]["version"])
            _api(
                environ,
                "PUT",
                f"/templates/{_name_path(name)}/tags/{_name_path(tag)}",
                {"version": version},
            )
            result = {"name": name, "version": version, "tag": tag}
            message = f"Template {name}@{version} was successfully tagged as {tag}"
            return 0, _out(result, message, options), ""
        if command == "template-remove-tag":
            options = _options(argv, {"json", "name", "tag"})
            name, tag = _required(options, "name"), _required(options, "tag")
            _api(environ, "DELETE", f"/templates/{_name_path(name)}/tags/{_name_path(tag)}")
            result = {"name": name, "tag": tag}
            return 0, _out(result, f"Tag {tag} was successfully removed from {name}", options), ""
        if command == "template-remove":
            options = _options(argv, {"json", "name"})
            name = _required(options, "name")
            _api(environ, "DELETE", f"/templates/{_name_path(name)}")
            return 0, _out({"name": name}, f"Template {name} was successfully removed", options), ""
    except ValueError:
        return 2, "", USAGE.get(command, "unknown template command") + "\n"
    except CommandError as exc:
        return 1, "", f"{command}: {exc}\n"
    return 2, "", f"unknown template command {command}\n"


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
    python = python or sys.executable
    module = bin_dir / "sd_template_commands.py"
    module.write_text(Path(__file__).read_text(encoding="utf-8"), encoding="utf-8")
    quoted = "'" + python.replace("'", "'\\''") + "'"
    written = []
    for command in COMMANDS:
        target = bin_dir / command
        target.write_text(
            f'#!/bin/sh\nexec {quoted} "${{0%/*}}/sd_template_commands.py" {command} "$@"\n',
            encoding="utf-8",
        )
        target.chmod(0o755)
        written.append(target)
    return written


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


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2:]))
