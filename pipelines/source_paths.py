"""`sourcePaths`: whether the files a push or pull request changed concern a job (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def source_paths_of(config: dict[str, Any], root_dir: str = "") -> list[str]:
    """A job's source paths; a pipeline's root directory stands in for a job without any."""
    raw = config.get("sourcePaths")
    paths = [raw] if isinstance(raw, str) else [str(p) for p in raw or []]
    if not paths and root_dir:
        paths = [f"{root_dir.strip('/')}/"]
    return paths


def _matches(path: str, source: str) -> bool:
    # A trailing slash names a directory (any file under it); anything else one exact file.
    return path.startswith(source) if source.endswith("/") else path == source


def matched_source(changed_files: Iterable[str], paths: Sequence[str]) -> str | None:
    """The source path that makes a change run the job, or None when no change concerns it.

    Screwdriver's rules: a file counts when it matches an include path and no `!` exclude
    path; when every path is an exclude, any file that is not excluded counts. The path
    returned is the first include that a counted file matched ("" when there are only
    excludes): it becomes SD_SOURCE_PATH.
    """
    includes = [p for p in paths if not p.startswith("!")]
    excludes = [p[1:] for p in paths if p.startswith("!")]
    for path in changed_files:
        if any(_matches(path, source) for source in excludes):
            continue
        if not includes:
            return ""
        source = next((s for s in includes if _matches(path, s)), None)
        if source is not None:
            return source
    return None


def runs_for(changed_files: Iterable[str], paths: Sequence[str]) -> bool:
    """True when a job with these source paths runs for these changed files."""
    return not paths or matched_source(changed_files, paths) is not None


def touches_root_dir(changed_files: Iterable[str], root_dir: str) -> bool:
    """Whether a change touches the pipeline's root directory (any change, without one).

    As in Screwdriver, a change that leaves the folder alone starts nothing of the pipeline,
    whatever its jobs' sourcePaths (relative to the repository's top) say.
    """
    if not root_dir:
        return True
    prefix = f"{root_dir.strip('/')}/"
    return any(path.startswith(prefix) for path in changed_files)


def concerned_jobs(
    names: Iterable[str],
    jobs_config: dict[str, list[dict[str, Any]]],
    root_dir: str,
    changed_files: Sequence[str],
) -> list[str]:
    """The jobs among `names` whose source paths (or the pipeline's root directory) a change
    touches, in the order given; none when the change is outside the root directory."""
    if not touches_root_dir(changed_files, root_dir):
        return []
    return [
        name
        for name in names
        if runs_for(changed_files, source_paths_of((jobs_config.get(name) or [{}])[0], root_dir))
    ]
