"""What the build commands on PATH share (template-*, sd-cmd): API calls and option parsing.

These modules are also copied into a build's `bin/` as a small package and run there with the
launcher's interpreter (see `install`), so they import nothing but the standard library and
each other.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

# The modules a build's bin/ gets, as the package below.
PACKAGE = "sd_build_commands"
MODULES = ("command_api", "command_formats", "confined", "template_commands", "sd_cmd")


class CommandError(Exception):
    """Something to tell the user on stderr, with exit status 1."""


def parse_options(argv: list[str], allowed: set[str], short: Mapping[str, str]) -> dict[str, str]:
    """`--key value`, `--key=value`, `-k value` and the `--json` / `-j` flag; ValueError else."""
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


def segment(name: str) -> str:
    """A name as one path segment (`ns/tpl` travels as `ns%2Ftpl`)."""
    return urllib.parse.quote(name, safe="")


def _root(environ: Mapping[str, str]) -> tuple[str, str]:
    api_url, token = environ.get("SD_API_URL", ""), environ.get("SD_TOKEN", "")
    if not api_url or not token:
        raise CommandError("SD_API_URL and SD_TOKEN must be set: run this in a build.")
    root = api_url.rstrip("/")
    root = root if root.endswith("/v4") else root + "/v4"
    if not root.startswith(("http://", "https://")):
        raise CommandError(f"SD_API_URL {api_url!r} is not an http(s) URL.")
    return root, token


def _open(
    environ: Mapping[str, str],
    method: str,
    path: str,
    data: bytes | None = None,
    content_type: str = "application/json",
) -> Any:
    root, token = _root(environ)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(  # noqa: S310 - http(s) checked above
        root + path, data=data, headers=headers, method=method
    )
    try:
        return urllib.request.urlopen(request, timeout=60)  # noqa: S310
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read().decode("utf-8"))
        except ValueError:
            answer = {}
        message = answer.get("message") if isinstance(answer, dict) else None
        raise CommandError(f"{exc.code} ({exc.reason}): {message or 'no message'}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise CommandError(f"cannot reach the API at {root}: {exc}") from exc


def call(environ: Mapping[str, str], method: str, path: str, body: Any = None) -> Any:
    """Call the API with the build's token; return the JSON answer or raise CommandError."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    with _open(environ, method, path, data) as response:
        raw = response.read()
    return json.loads(raw.decode("utf-8")) if raw else None


def post_multipart(
    environ: Mapping[str, str], path: str, fields: Mapping[str, str], files: Mapping[str, bytes]
) -> Any:
    """POST a multipart/form-data body (text fields and files); return the JSON answer."""
    boundary = "sd-" + urllib.parse.quote(str(id(fields))) + "-boundary"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode("utf-8")
            + b"\r\n"
        )
    for name, content in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + content
            + b"\r\n"
        )
    data = b"".join(parts) + f"--{boundary}--\r\n".encode()
    with _open(environ, "POST", path, data, f"multipart/form-data; boundary={boundary}") as answer:
        raw = answer.read()
    return json.loads(raw.decode("utf-8")) if raw else None


def download(environ: Mapping[str, str], path: str) -> Iterator[bytes]:
    """The bytes the API answers `GET path` with, in chunks."""
    with _open(environ, "GET", path) as response:
        while chunk := response.read(256 * 1024):
            yield chunk


def out(result: Any, text: str, options: Mapping[str, str]) -> str:
    """What a command prints: its result as JSON with `--json`, else the sentence."""
    return (json.dumps(result) if options.get("json") else text) + "\n"


def install(bin_dir: Path, commands: Mapping[str, str], python: str | None = None) -> list[Path]:
    """Write `commands` (name -> module of this package) into `bin_dir`, run by `python`.

    The modules go to a package folder beside them; each command is a /bin/sh script that
    starts the interpreter isolated from the build's PYTHON* variables and user site.
    """
    python = python or sys.executable
    package = bin_dir / ".sd-commands" / PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    here = Path(__file__).parent
    for module in MODULES:
        text = (here / f"{module}.py").read_text(encoding="utf-8")
        (package / f"{module}.py").write_text(text, encoding="utf-8")
    quoted = "'" + python.replace("'", "'\\''") + "'"
    written = []
    for command, module in commands.items():
        starter = (
            "import sys; sys.path.insert(0, sys.argv[1]); "
            f"from {PACKAGE}.{module} import main; "
            "raise SystemExit(main(sys.argv[2], sys.argv[3:]))"
        )
        target = bin_dir / command
        target.write_text(
            f"#!/bin/sh\nexec {quoted} -I -c '{starter}' "
            f'"${{0%/*}}/.sd-commands" {command} "$@"\n',
            encoding="utf-8",
        )
        target.chmod(0o755)
        written.append(target)
    return written
