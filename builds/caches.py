"""Build caches (screwdriver.yaml's `cache:`): which caches a build may read and write, their
archives in the outputs storage, and the Cache rows that list them.

The parser lays the top-level `cache: {pipeline: [...], event: [...], job: {name: [...]}}`
into each job that did not opt out with `cache: false`, as `cache: {pipeline, event, job}`.
The launcher restores those paths in `sd-setup-cache` and saves them in `sd-teardown-cache`
(executors/launcher/cache.py); a cache's name is its path as screwdriver.yaml writes it.

A build reaches the caches of its own pipeline, event and job, by the names its job lists, and
nothing else: the scope ids come from the build, never from the caller. A pull request's build
reads its pipeline's caches and those of the job it is a copy of (`PR-7:main` reads `main`'s),
as Screwdriver's store lets it; it writes only its own event's, never the pipeline's or a job's,
so code nobody merged cannot change what the branch's builds restore.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Protocol, cast

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils import timezone

from builds.models import Build, Cache
from pipelines.models import Event, Job, Pipeline
from screwdriver_site.outputs import delete_prefix, outputs

logger = logging.getLogger(__name__)

SETUP_STEP = "sd-setup-cache"
TEARDOWN_STEP = "sd-teardown-cache"
STEPS = (SETUP_STEP, TEARDOWN_STEP)
# screwdriver.yaml's keys in the order Screwdriver restores and saves them, and the names its
# API and store give the same scopes.
KEYS = ("pipeline", "event", "job")
SCOPE_OF_KEY: dict[str, str] = {
    "pipeline": Cache.Scope.PIPELINES,
    "event": Cache.Scope.EVENTS,
    "job": Cache.Scope.JOBS,
}
KEY_OF_SCOPE: dict[str, str] = {scope: key for key, scope in SCOPE_OF_KEY.items()}
MAX_NAME_BYTES = 1024
DIGEST = re.compile(r"[0-9a-f]{64}\Z")
_PR_JOB = re.compile(r"PR-\d+:(.+)\Z", re.DOTALL)


class CacheError(Exception):
    """A cache request that cannot be served; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def cache_paths(config: dict[str, Any]) -> dict[str, list[str]]:
    """The job's cache paths by scope key (pipeline, event, job), without empty scopes."""
    cache = config.get("cache")
    if not isinstance(cache, dict):
        return {}
    out: dict[str, list[str]] = {}
    for key in KEYS:
        paths = cache.get(key)
        kept = [p for p in paths if isinstance(p, str) and p] if isinstance(paths, list) else []
        if kept:
            out[key] = list(dict.fromkeys(kept))
    return out


def uses_cache(config: dict[str, Any]) -> bool:
    """Whether builds of this job config restore and save caches (and so get the steps)."""
    return bool(cache_paths(config))


def scope_named(text: str) -> str | None:
    """The scope a URL names, singular as screwdriver.yaml writes it or plural as the API."""
    if text in SCOPE_OF_KEY:
        return SCOPE_OF_KEY[text]
    return text if text in KEY_OF_SCOPE else None


def storage_prefix(scope: str, scope_id: int) -> str:
    return f"caches/{scope}/{scope_id}"


def name_key(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()


def is_pull_request_build(build: Build) -> bool:
    """Whether the build runs a pull request's code (its event, or a `PR-N:` job)."""
    return build.event.is_pull_request or bool(_PR_JOB.match(build.job.name))


def _pr_parent_job_id(build: Build) -> int | None:
    match = _PR_JOB.match(build.job.name)
    if match is None:
        return None
    return (
        Job.objects.filter(pipeline_id=build.job.pipeline_id, name=match.group(1))
        .values_list("pk", flat=True)
        .first()
    )


def scope_id_for(build: Build, scope: str, *, write: bool) -> int:
    """The id of the build's own pipeline, event or job that `scope` names."""
    if scope == Cache.Scope.PIPELINES:
        return build.job.pipeline_id
    if scope == Cache.Scope.EVENTS:
        return build.event_id
    if not write:
        # Screwdriver's store lets a PR's copy of a job read the job's own cache.
        parent = _pr_parent_job_id(build)
        if parent is not None:
            return parent
    return build.job_id


def check_access(build: Build, scope: str, name: str, *, write: bool) -> int:
    """The scope id the build may use for cache `name`, or CacheError saying why not."""
    key = KEY_OF_SCOPE[scope]
    if name not in cache_paths(build.job_config()).get(key, []):
        raise CacheError(
            f"Job {build.job.name} lists no {key} cache {name!r} in screwdriver.yaml: a build "
            "reaches only the caches its job names.",
            403,
        )
    # A pull request's own event holds only its builds: that one cache it may write.
    own_event = scope == Cache.Scope.EVENTS and build.event.is_pull_request
    if write and not own_event and is_pull_request_build(build):
        raise CacheError(
            f"A pull request's build may read the {key} cache {name!r}, never change it.", 403
        )
    return scope_id_for(build, scope, write=write)


def find_cache(build: Build, scope: str, name: str) -> Cache | None:
    """The cache the build would restore, after checking that it may read it."""
    scope_id = check_access(build, scope, name, write=False)
    return Cache.objects.filter(scope=scope, scope_id=scope_id, name_key=name_key(name)).first()


def mark_read(cache: Cache) -> None:
    """Remember that a build restored it: retention keeps caches that are still used."""
    Cache.objects.filter(pk=cache.pk).update(read_at=timezone.now())


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Body:
    """Exactly `length` bytes of a request body, read as asked, never all at once."""

    def __init__(self, source: Readable, length: int) -> None:
        self.source = source
        self.remaining = length
        self.length = length

    def read(self, size: int = -1) -> bytes:
        if self.remaining == 0:
            return b""
        want = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self.source.read(want)
        if not data:
            raise CacheError(
                f"The body ended after {self.length - self.remaining} of the {self.length} "
                "bytes its Content-Length announced.",
                400,
            )
        self.remaining -= len(data)
        return data

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return False

    def close(self) -> None:
        """The request owns the stream."""


def store_cache(
    *, build: Build, scope: str, name: str, source: Readable, length: int, digest: str
) -> Cache:
    """Save `length` bytes of `source` as the archive of the build's cache `name` in `scope`.

    The bytes go to a new object of the outputs storage as they are read; only once it is
    complete does the row point at it (and the object it replaces is deleted), so a reader
    never sees half an archive, and a refused or broken upload leaves nothing behind.
    """
    scope_id = check_access(build, scope, name, write=True)
    if not DIGEST.match(digest):
        raise CacheError("X-Cache-Digest must be the 64 hex digits of the files' sha256.", 400)
    cap = settings.SD_CACHE_MAX_BYTES
    if length > cap:
        raise CacheError(
            f"The cache {name!r} is {length} bytes; this server keeps caches of at most {cap} "
            "bytes (SD_CACHE_MAX_BYTES).",
            413,
        )
    key = name_key(name)
    storage = outputs()
    # No file extension: a storage would guess a Content-Encoding from `.gz` and a proxy might
    # then unpack the archive on its way.
    fresh = f"{storage_prefix(scope, scope_id)}/{key}-{uuid.uuid4().hex}"
    try:
        # File wants an IO; the storages call only read() (and seekable()) on it.
        body = cast(IO[bytes], _Body(source, length))
        saved = storage.save(fresh, File(body, name=posixpath.basename(fresh)))
    except BaseException:
        _delete_quietly(fresh)
        raise
    if saved != fresh:  # a storage that renames instead of overwriting: never serve the wrong file
        _delete_quietly(saved)
        raise CacheError(f"The storage could not keep the cache {name!r} under its own name.", 500)
    fields = {
        "pipeline_id": build.job.pipeline_id,
        "name": name,
        "storage_name": fresh,
        "size": length,
        "digest": digest,
        "build": build,
        "updated_at": timezone.now(),
    }
    try:
        cache, replaced = _point_at(scope, scope_id, key, fields)
    except BaseException:
        _delete_quietly(fresh)
        raise
    if replaced:
        _delete_quietly(replaced)
    return cache


def _point_at(scope: str, scope_id: int, key: str, fields: dict[str, Any]) -> tuple[Cache, str]:
    """Make the row of this cache describe the new archive; return it and the archive it had."""
    for _attempt in range(2):
        with transaction.atomic():
            row = (
                Cache.objects.select_for_update()
                .filter(scope=scope, scope_id=scope_id, name_key=key)
                .first()
            )
            if row is not None:
                replaced = row.storage_name
                for field, value in fields.items():
                    setattr(row, field, value)
                row.save()
                return row, replaced
            try:
                with transaction.atomic():
                    return (
                        Cache.objects.create(
                            scope=scope, scope_id=scope_id, name_key=key, **fields
                        ),
                        "",
                    )
            except IntegrityError:
                continue  # another build created it meanwhile: update that row
    raise CacheError("The cache changed under two builds at once; send it again.", 409)


def _delete_quietly(name: str) -> None:
    try:
        outputs().delete(name)
    except Exception:
        # A leftover archive goes with its scope's folder (a clear, or the retention's sweep).
        logger.warning("Could not delete the cache archive %s", name, exc_info=True)


def delete_caches(caches: Iterable[Cache]) -> int:
    """Delete these caches' archives and rows; return how many went."""
    count = 0
    for cache in caches:
        _delete_quietly(cache.storage_name)
        Cache.objects.filter(pk=cache.pk).delete()
        count += 1
    return count


def clear_scope(*, pipeline: Pipeline, scope: str, scope_id: int) -> int:
    """Delete every cache of the pipeline, or of one of its events or jobs (the DELETE route).

    Returns how many caches there were; CacheError 404 when `scope_id` is not the pipeline's.
    """
    if scope == Cache.Scope.PIPELINES:
        owned = scope_id == pipeline.pk
    elif scope == Cache.Scope.EVENTS:
        owned = Event.objects.filter(pk=scope_id, pipeline=pipeline).exists()
    else:
        owned = Job.objects.filter(pk=scope_id, pipeline=pipeline).exists()
    if not owned:
        raise CacheError(
            f"Pipeline {pipeline.pk} has no {KEY_OF_SCOPE[scope]} {scope_id}: check cacheId.", 404
        )
    count, _ = Cache.objects.filter(scope=scope, scope_id=scope_id).delete()
    # The whole folder goes, with any archive an interrupted upload left there.
    delete_prefix(storage_prefix(scope, scope_id))
    return count


@dataclass(frozen=True)
class CacheGroup:
    """The caches of one scope of a pipeline, as its options page lists them."""

    scope: str
    scope_id: int
    label: str  # "Job main"
    what: str  # "job main", as a sentence says it
    caches: list[Cache]

    @property
    def size(self) -> int:
        return sum(cache.size for cache in self.caches)

    @property
    def updated_at(self) -> datetime:
        return max(cache.updated_at for cache in self.caches)


def caches_of(pipeline: Pipeline) -> list[CacheGroup]:
    """The pipeline's caches by scope: the pipeline's, each job's, then each event's, newest
    event first."""
    rows = list(Cache.objects.filter(pipeline=pipeline).order_by("scope", "scope_id", "name"))
    jobs = dict(
        Job.objects.filter(
            pk__in={r.scope_id for r in rows if r.scope == Cache.Scope.JOBS}
        ).values_list("pk", "name")
    )
    grouped: dict[tuple[str, int], list[Cache]] = {}
    for row in rows:
        grouped.setdefault((row.scope, row.scope_id), []).append(row)

    def order(item: tuple[tuple[str, int], list[Cache]]) -> tuple[int, int]:
        (scope, scope_id), _caches = item
        if scope == Cache.Scope.PIPELINES:
            return 0, scope_id
        return (1, scope_id) if scope == Cache.Scope.JOBS else (2, -scope_id)

    groups = []
    for (scope, scope_id), found in sorted(grouped.items(), key=order):
        if scope == Cache.Scope.PIPELINES:
            label, what = "Pipeline", "the pipeline"
        elif scope == Cache.Scope.JOBS:
            name = jobs.get(scope_id, str(scope_id))
            label, what = f"Job {name}", f"job {name}"
        else:
            label = f"Event {scope_id}"
            what = f"event {scope_id}"
        groups.append(CacheGroup(scope, scope_id, label, what, found))
    return groups


def cache_spec(build: Build) -> dict[str, Any] | None:
    """The launch spec's `cache`: the paths to restore and save, and what the build may save."""
    paths = cache_paths(build.job_config())
    if not paths:
        return None
    pull_request = is_pull_request_build(build)
    return {
        **paths,
        # A pull request's build saves only its own event's caches (the server refuses more).
        "save": [
            key
            for key in paths
            if not pull_request or (key == "event" and build.event.is_pull_request)
        ],
        "maxBytes": settings.SD_CACHE_MAX_BYTES,
    }
