"""The `meta` command builds use: `meta get KEY`, `meta set KEY VALUE` on $SD_META_PATH.

`meta get KEY --external sd@PIPELINE:JOB` (or `--external JOB` in this pipeline) reads another
job's meta as meta-cli does: the copy under `sd.PIPELINE.JOB` in this build's meta first (what
a triggering build left there), then `SD_META_DIR/sd@PIPELINE:JOB.json`, then the meta of that
job's last successful build from the API (with SD_TOKEN), which is then kept under
`sd.PIPELINE.JOB` unless `--skip-store`; `--skip-fetch` never asks the API.
`meta set --external` is refused: a build sets only its own meta.

meta-cli's `-u/--sd-api-url` and `-t/--sd-token` are accepted and ignored: the request always
goes to the build's own SD_API_URL with its own SD_TOKEN. For a container the launcher answers
`meta` on the host, outside the container's network isolation, so honouring a per-call URL
would let a step make the host fetch any address with the build's token.

This file is also copied verbatim into each workspace's `bin/meta`, so it must stay
self-contained: standard library only, no imports from its package.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import stat
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

USAGE = (
    "usage: meta get [--json-value] [--external sd@PIPELINE:JOB [--skip-fetch] [--skip-store]]"
    " KEY | meta set [--json-value] KEY VALUE"
)
_MISSING = object()
# What the launcher reads back from a workspace a build controls: a meta file is data for the
# API, never megabytes.
MAX_BYTES = 8 << 20

# Every function that takes `dir_fd` works, when it is given, on `path.name` inside that open
# directory and never through a symbolic link: the launcher answers a container's `meta` on
# the host, where a link that the build put in place of meta.json would lead to a host file.


def _open(path: Path, flags: int, dir_fd: int | None) -> int:
    if dir_fd is None:
        return os.open(path, flags | os.O_CLOEXEC, 0o644)
    fd = os.open(
        path.name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644, dir_fd=dir_fd
    )
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{path.name} is not a regular file")
    os.set_blocking(fd, True)
    return fd


def read_json(path: Path, dir_fd: int | None = None) -> Any:
    """The JSON document in the file at `path` (None when it is empty)."""
    with os.fdopen(_open(path, os.O_RDONLY, dir_fd), "rb") as handle:
        raw = handle.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise ValueError(f"{path.name} is larger than {MAX_BYTES} bytes")
    text = raw.decode("utf-8")
    return json.loads(text) if text.strip() else None


def load(path: Path, dir_fd: int | None = None) -> dict[str, Any]:
    """The meta object stored at `path` ({} when the file is missing or empty)."""
    try:
        data = read_json(path, dir_fd)
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def save(path: Path, data: dict[str, Any], dir_fd: int | None = None) -> None:
    """Replace the file at `path` atomically, so a reader never sees half a document."""
    parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY) if dir_fd is None else dir_fd
    tmp = f".meta-{secrets.token_hex(8)}"
    try:
        fd = os.open(
            tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o644,
            dir_fd=parent,
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, ensure_ascii=False)
                handle.flush()
                os.fchmod(handle.fileno(), 0o644)
                os.fsync(handle.fileno())
            # A rename replaces a link in place of meta.json; it never writes through it.
            os.replace(tmp, path.name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=parent)
            raise
    finally:
        if dir_fd is None:
            os.close(parent)


@contextlib.contextmanager
def locked(path: Path, dir_fd: int | None = None) -> Iterator[None]:
    """Serialise read-modify-write cycles of concurrent `meta set` calls."""
    fd = _open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, dir_fd)
    with os.fdopen(fd, "r+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def split_key(key: str) -> list[str]:
    """`a.b.c` -> ["a", "b", "c"]; empty parts are refused."""
    parts = key.split(".")
    if not all(parts):
        raise ValueError(f"Invalid meta key {key!r}: use names separated by single dots.")
    return parts


def get_value(data: Any, key: str) -> Any:
    """The value at a dotted key, or a sentinel when any part is missing."""
    node = data
    for part in split_key(key):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def set_value(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """Store `value` at a dotted key, creating (or replacing non-object) parents as objects."""
    parts = split_key(key)
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value
    return data


def render(value: Any) -> str:
    """What `meta get` prints: strings raw, everything else (missing too) as JSON."""
    if value is _MISSING:
        return "null"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def meta_path() -> Path:
    """Where the meta file lives for this build."""
    path = os.environ.get("SD_META_PATH")
    if path:
        return Path(path)
    return Path(os.environ.get("SD_META_DIR", "/sd/meta")) / "meta.json"


# ASCII digits only: `\d` would also take other scripts' digits into the URL.
_EXTERNAL_RE = re.compile(r"sd@([0-9]+):([\w-]+)")
_VALUE_OPTIONS = {
    "-e": "external",
    "--external": "external",
    "-t": "sd-token",
    "--sd-token": "sd-token",
    "-u": "sd-api-url",
    "--sd-api-url": "sd-api-url",
    "-p": "sd-pipeline-id",
    "--sd-pipeline-id": "sd-pipeline-id",
}
_FLAGS = {
    "-j": "json-value",
    "--json-value": "json-value",
    "-F": "skip-fetch",
    "--skip-fetch": "skip-fetch",
    "--skip-store": "skip-store",
    "--cache-local": "cache-local",
}


class MetaError(Exception):
    """A meta command that cannot be done; the message says why and what to do."""


def parse(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Split a command line into its words and its options (meta-cli's names and letters)."""
    args: list[str] = []
    options: dict[str, str] = {}
    words = iter(argv)
    for arg in words:
        name, eq, inline = arg.partition("=")
        if name in _VALUE_OPTIONS:
            value = inline if eq else next(words, None)
            if value is None or (not eq and value.startswith("-")):
                raise MetaError(f"{name} needs a value, e.g. {name} sd@123:publish.")
            options[_VALUE_OPTIONS[name]] = value
        elif arg in _FLAGS:
            options[_FLAGS[arg]] = "true"
        else:
            args.append(arg)
    return args, options


def external_job(external: str, pipeline_id: str) -> tuple[str, str]:
    """(pipeline id, job name) of `sd@123:job`, or of a bare job name in this pipeline."""
    match = _EXTERNAL_RE.fullmatch(external)
    if match:
        return match.group(1), match.group(2)
    if not re.fullmatch(r"[\w-]+", external):
        raise MetaError(f"--external {external!r} is not sd@PIPELINE:JOB or a job name.")
    if not re.fullmatch(r"[0-9]+", pipeline_id):
        raise MetaError(f"--external {external} needs SD_PIPELINE_ID (or --sd-pipeline-id).")
    return pipeline_id, external


def fetch_last_successful_meta(
    api_url: str, token: str, pipeline_id: str, job: str
) -> dict[str, Any]:
    """The meta of the job's last successful build, from the API with the build's token."""
    if not api_url or not token:
        raise MetaError("--external needs SD_API_URL and SD_TOKEN to ask the API; are they set?")
    root = api_url.rstrip("/")
    root = root if root.endswith("/v4") else root + "/v4"
    if not root.startswith(("http://", "https://")):
        raise MetaError(f"SD_API_URL {api_url!r} is not an http(s) URL; check the build's setup.")
    if not re.fullmatch(r"[0-9]+", pipeline_id) or not re.fullmatch(r"[\w-]+", job):
        raise MetaError(f"sd@{pipeline_id}:{job} is not sd@PIPELINE:JOB; check --external.")
    quoted = urllib.parse.quote(job, safe="")
    url = f"{root}/pipelines/{pipeline_id}/jobs/{quoted}/lastSuccessfulMeta"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) checked above
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            data = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        try:
            reason = str(json.loads(exc.read().decode("utf-8")).get("message") or exc.reason)
        except (ValueError, AttributeError):
            reason = str(exc.reason)
        raise MetaError(f"cannot read the meta of sd@{pipeline_id}:{job}: {reason}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise MetaError(f"cannot read the meta of sd@{pipeline_id}:{job}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def external_meta(
    path: Path,
    external: str,
    options: dict[str, str],
    environ: Mapping[str, str],
    dir_fd: int | None = None,
) -> Any:
    """Another job's meta, looked up as meta-cli does (see the module's docstring)."""
    pipeline_id, job = external_job(
        external, options.get("sd-pipeline-id") or environ.get("SD_PIPELINE_ID", "")
    )
    key = f"sd.{pipeline_id}.{job}"
    kept = get_value(load(path, dir_fd), key)
    if kept is not _MISSING and kept is not None:
        return kept
    try:
        data: Any = read_json(path.parent / f"sd@{pipeline_id}:{job}.json", dir_fd)
    except FileNotFoundError:
        if options.get("skip-fetch"):
            return {}
        # Never the per-call -u/-t (see the module's docstring).
        data = fetch_last_successful_meta(
            environ.get("SD_API_URL", ""),
            environ.get("SD_TOKEN", ""),
            pipeline_id,
            job,
        )
    if isinstance(data, dict):
        # Its own `sd` copies of other jobs' meta are not part of what that job set.
        data.pop("sd", None)
    if not options.get("skip-store"):
        with locked(path, dir_fd):
            save(path, set_value(load(path, dir_fd), key, data), dir_fd)
    return data


def run(
    argv: list[str],
    path: Path,
    environ: Mapping[str, str] | None = None,
    dir_fd: int | None = None,
) -> tuple[int, str, str]:
    """Run a meta command line against the file at `path`; return (status, stdout, stderr)."""
    environ = os.environ if environ is None else environ
    try:
        args, options = parse(argv)
        json_value = bool(options.get("json-value"))
        external = options.get("external")
        if len(args) == 2 and args[0] == "get" and external is not None:
            data = external_meta(path, external, options, environ, dir_fd)
            return 0, render(get_value(data, args[1])) + "\n", ""
        if len(args) == 2 and args[0] == "get":
            return 0, render(get_value(load(path, dir_fd), args[1])) + "\n", ""
        if len(args) == 3 and args[0] == "set" and external is not None:
            raise MetaError("meta set works on this build's meta only: drop --external.")
        if len(args) == 3 and args[0] == "set":
            value: Any = json.loads(args[2]) if json_value else args[2]
            with locked(path, dir_fd):
                save(path, set_value(load(path, dir_fd), args[1], value), dir_fd)
            return 0, "", ""
    except (MetaError, ValueError, OSError) as exc:
        return 1, "", f"meta: {exc}\n"
    return 2, "", USAGE + "\n"


def main(argv: list[str]) -> int:
    """Run the command line; return the exit status."""
    code, out, err = run(argv, meta_path())
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


def install(bin_dir: Path, python: str | None = None) -> Path:
    """Write an executable `meta` into `bin_dir` that needs nothing but a Python interpreter."""
    python = python or sys.executable
    target = bin_dir / "meta"
    source = Path(__file__).read_text(encoding="utf-8")
    if len(python) < 120 and not any(c.isspace() for c in python):
        target.write_text(f"#!{python}\n{source}", encoding="utf-8")
    else:
        # A shebang cannot hold a long path or one with spaces; go through sh instead.
        (bin_dir / "meta.py").write_text(source, encoding="utf-8")
        quoted = "'" + python.replace("'", "'\\''") + "'"
        target.write_text(f'#!/bin/sh\nexec {quoted} "$0.py" "$@"\n', encoding="utf-8")
    target.chmod(0o755)
    return target


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
