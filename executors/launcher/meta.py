"""The `meta` command builds use: `meta get KEY`, `meta set KEY VALUE` on $SD_META_PATH.

This file is also copied verbatim into each workspace's `bin/meta`, so it must stay
self-contained: standard library only, no imports from its package.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

USAGE = "usage: meta get KEY | meta set [--json-value] KEY VALUE"
_MISSING = object()


def load(path: Path) -> dict[str, Any]:
    """The meta object stored at `path` ({} when the file is missing or empty)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    data = json.loads(text) if text.strip() else {}
    return data if isinstance(data, dict) else {}


def save(path: Path, data: dict[str, Any]) -> None:
    """Replace the file at `path` atomically, so a reader never sees half a document."""
    fd, tmp = tempfile.mkstemp(prefix=".meta-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Serialise read-modify-write cycles of concurrent `meta set` calls."""
    with open(path.with_name(path.name + ".lock"), "a") as lock:
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


def run(argv: list[str], path: Path) -> tuple[int, str, str]:
    """Run a meta command line against the file at `path`; return (status, stdout, stderr)."""
    json_value = False
    args = []
    for arg in argv:
        if arg in ("-j", "--json-value"):
            json_value = True
        else:
            args.append(arg)
    try:
        if len(args) == 2 and args[0] == "get":
            return 0, render(get_value(load(path), args[1])) + "\n", ""
        if len(args) == 3 and args[0] == "set":
            value: Any = json.loads(args[2]) if json_value else args[2]
            with locked(path):
                save(path, set_value(load(path), args[1], value))
            return 0, "", ""
    except (ValueError, OSError) as exc:
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
