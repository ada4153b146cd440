"""How long build outputs are kept: artifacts and caches older than SD_OUTPUTS_RETENTION_DAYS
are deleted, files and rows, by a daily task and by `manage.py sd_prune_outputs`.

An artifact's age is its build's newest artifact's; a cache's is the later of its last save
and its last restore, so a cache still in use stays (Screwdriver's store renews a cache's
time on each read for the same reason). Folders of the storage whose pipeline, event, job or
build no longer exists go as well, with any Cache row left pointing into them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from builds.artifacts import delete_artifacts
from builds.caches import delete_caches, storage_prefix
from builds.models import Artifact, Build, Cache
from pipelines.models import Event, Job, Pipeline
from screwdriver_site.outputs import delete_prefix, outputs

BATCH_SIZE = 100
# Storage folders named by the id of what owns them (builds.caches, builds.artifacts).
OWNED_FOLDERS: tuple[tuple[str, Any], ...] = (
    ("caches/pipelines", Pipeline),
    ("caches/events", Event),
    ("caches/jobs", Job),
    ("artifacts", Build),
)
_SCOPE_OF_FOLDER = {storage_prefix(scope, 0).rsplit("/", 1)[0]: scope for scope in Cache.Scope}

Progress = Callable[[int, int], None]


@dataclass
class PruneReport:
    """What a prune deleted (or, in a dry run, would delete)."""

    artifact_builds: int = 0
    artifact_files: int = 0
    artifact_bytes: int = 0
    caches: int = 0
    cache_bytes: int = 0
    orphan_folders: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def retention_cutoff(*, days: int | None = None, now: datetime | None = None) -> datetime | None:
    """The moment before which outputs are old enough to delete; None keeps them forever."""
    keep = settings.SD_OUTPUTS_RETENTION_DAYS if days is None else days
    if keep <= 0:
        return None
    return (now or timezone.now()) - timedelta(days=keep)


def old_artifact_builds(before: datetime) -> list[int]:
    """Ids of the builds whose newest artifact was stored before `before`."""
    return list(
        Artifact.objects.values("build_id")
        .annotate(newest=Max("created_at"))
        .filter(newest__lt=before)
        .order_by("build_id")
        .values_list("build_id", flat=True)
    )


def old_caches(before: datetime) -> list[int]:
    """Ids of the caches neither saved nor restored since `before`."""
    return list(
        Cache.objects.filter(updated_at__lt=before)
        .filter(Q(read_at__isnull=True) | Q(read_at__lt=before))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _folders(folder: str) -> list[str]:
    try:
        found, _files = outputs().listdir(folder)
    except FileNotFoundError:  # a folder storage has no such folder yet (S3 lists nothing)
        return []
    return list(found)


def orphan_folders() -> list[str]:
    """Storage folders of pipelines, events, jobs and builds that no longer exist."""
    gone = []
    for folder, model in OWNED_FOLDERS:
        ids = sorted({int(name) for name in _folders(folder) if name.isdigit()})
        for batch in _batches(ids, 1000):
            alive = set(model.objects.filter(pk__in=batch).values_list("pk", flat=True))
            gone += [f"{folder}/{pk}" for pk in batch if pk not in alive]
    return gone


def _batches(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def prune_outputs(
    *,
    before: datetime,
    dry_run: bool = False,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> PruneReport:
    """Delete the artifacts and caches older than `before`, and the folders nothing owns."""
    report = PruneReport()
    builds = old_artifact_builds(before)
    caches = old_caches(before)
    orphans = orphan_folders()
    total = len(builds) + len(caches) + len(orphans)
    done = 0

    def step(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total)

    for batch in _batches(builds, batch_size):
        found = Artifact.objects.filter(build_id__in=batch).aggregate(
            n=Count("pk"), size=Sum("size")
        )
        report.artifact_builds += len(batch)
        report.artifact_files += found["n"] or 0
        report.artifact_bytes += found["size"] or 0
        if not dry_run:
            delete_artifacts(Build.objects.filter(pk__in=batch))
        step(len(batch))
    for batch in _batches(caches, batch_size):
        rows = list(Cache.objects.filter(pk__in=batch))
        report.caches += len(rows)
        report.cache_bytes += sum(row.size for row in rows)
        if not dry_run:
            delete_caches(rows)
        step(len(batch))
    for folder in orphans:
        report.orphan_folders += 1
        if not dry_run:
            _delete_orphan(folder)
        step(1)
    return report


def _delete_orphan(folder: str) -> None:
    parent, _, pk = folder.rpartition("/")
    scope = _SCOPE_OF_FOLDER.get(parent)
    if scope is not None:
        Cache.objects.filter(scope=scope, scope_id=int(pk)).delete()
    delete_prefix(folder)


def describe(report: PruneReport, *, dry_run: bool) -> Iterable[str]:
    """The report in words, one line per kind of output."""
    verb = "Would delete" if dry_run else "Deleted"
    yield (
        f"{verb} the artifacts of {_count(report.artifact_builds, 'build')} "
        f"({_count(report.artifact_files, 'file')}, {size_text(report.artifact_bytes)})."
    )
    yield f"{verb} {_count(report.caches, 'cache')} ({size_text(report.cache_bytes)})."
    owners = _count(report.orphan_folders, "pipeline, event, job or build")
    yield f"{verb} the stored files of {owners} that no longer exist."


def _count(n: int, noun: str) -> str:
    return f"1 {noun}" if n == 1 else f"{n} {_plural(noun)}"


def _plural(noun: str) -> str:
    # "pipeline, event, job or build" -> "pipelines, events, jobs or builds"
    return ", ".join(
        " or ".join(word + "s" for word in part.split(" or ")) for part in noun.split(", ")
    )


def size_text(count: int) -> str:
    """`512 B`, `12.0 KiB`, `3.4 GiB`."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
