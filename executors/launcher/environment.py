"""Building a build's environment in order, and writing it where a shell can source it."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_REFERENCE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")

# Variables that configure the launcher itself: a build must never see them (the token would
# let a step act as the launcher; PYTHONPATH points into the server's code).
LAUNCHER_PRIVATE = (
    "SD_LAUNCHER_TOKEN",
    "SD_LOG_MAX_LINE_BYTES",
    "SD_LOG_MAX_STEP_BYTES",
    "PYTHONPATH",
)
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def is_valid_name(name: str) -> bool:
    """Whether `name` can be exported by a POSIX shell."""
    return bool(_NAME.match(name))


def expand(value: str, env: Mapping[str, str]) -> str:
    """Replace `$NAME` and `${NAME}` with values from `env` (unknown names become empty).

    No shell runs, so command substitution, globs and quotes stay literal text; a `$` that does
    not start a name stays as it is.
    """
    return _REFERENCE.sub(lambda m: env.get(m.group(1) or m.group(2), ""), value)


def without_private(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without the variables that configure the launcher."""
    return {k: v for k, v in environ.items() if k not in LAUNCHER_PRIVATE}


def build_environment(
    *,
    base: Mapping[str, str],
    launcher_vars: Mapping[str, str],
    bin_dir: Path,
    job_environment: Iterable[tuple[str, str]],
    secrets: Mapping[str, str],
) -> dict[str, str]:
    """The environment of every step, in the order values may refer to each other.

    Order: the launcher's own environment (minus its private variables), `bin_dir` prepended to
    PATH, the variables that depend on where the launcher runs, the job's environment (expanded
    against everything before it; it cannot override the launcher's variables), then secrets
    taken literally.
    """
    env = without_private(base)
    env["PATH"] = f"{bin_dir}:{env.get('PATH') or DEFAULT_PATH}"
    env.update(launcher_vars)
    for name, value in job_environment:
        if name in launcher_vars:
            continue
        env[name] = expand(str(value), env)
    for name, value in secrets.items():
        env.pop(name, None)  # re-inserted so that secrets really come last
        env[name] = str(value)
    return env


def export_script(env: Mapping[str, str]) -> str:
    """Shell text that exports `env`; names a shell cannot export are left out."""
    lines = [
        f"export {name}={shlex.quote(value)}"
        for name, value in env.items()
        if is_valid_name(name) and "\0" not in value
    ]
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it may hold secrets)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(text)
