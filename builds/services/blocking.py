"""blockedBy, blocked by the same job, collapsed builds: who waits BLOCKED and who runs.

Rules: they change statuses and return what changed; the settlement (`settle`) acts on it.
The caller holds the pipeline's row lock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from builds import lifecycle, live
from builds.models import Build, BuildQuerySet, BuildStatus
from builds.services.locks import lock_pipeline
from pipelines import workflow

BLOCKED_BY_SAME_JOB = "screwdriver.cd/blockedBySameJob"
BLOCKED_BY_SAME_JOB_WAIT_TIME = "screwdriver.cd/blockedBySameJobWaitTime"
# Screwdriver's queue: without blockedBySameJob, builds of a job start this many minutes apart.
DEFAULT_SAME_JOB_WAIT_MINUTES = 5
COLLAPSE_BUILDS = "screwdriver.cd/collapseBuilds"


def _annotation_on(config: dict[str, Any], name: str) -> bool:
    # Screwdriver's blocking annotations default to on; only an explicit false turns them off.
    return str((config.get("annotations") or {}).get(name, True)).lower() not in {"false", "0"}


def same_job_wait(config: dict[str, Any]) -> timedelta:
    """How long a build of the job runs before another of it may start beside it
    (`blockedBySameJobWaitTime` minutes, 5 unless a whole number is given)."""
    value = (config.get("annotations") or {}).get(BLOCKED_BY_SAME_JOB_WAIT_TIME)
    text = str(value).strip() if value is not None and not isinstance(value, bool) else ""
    minutes = int(text) if text.isdigit() else DEFAULT_SAME_JOB_WAIT_MINUTES
    return timedelta(minutes=minutes)


def _blockers(build: Build) -> BuildQuerySet:
    """The other active builds that keep ``build`` from running now."""
    config = build.job_config()
    declared = [str(name) for name in config.get("blockedBy") or []]
    names = {name.lstrip("~") for name in declared if workflow.is_job_node(name.lstrip("~"))}
    same_job = _annotation_on(config, BLOCKED_BY_SAME_JOB)
    if same_job:
        names.add(build.job.name)
    which = Q(job__pipeline_id=build.job.pipeline_id, job__name__in=names)
    if not same_job:
        # As Screwdriver's queue does: the job's builds may run side by side, but each waits
        # until the one before it has run for the wait time (one not started yet blocks).
        started_after = timezone.now() - same_job_wait(config)
        which |= Q(job_id=build.job_id) & (
            Q(start_time__isnull=True) | Q(start_time__gt=started_after)
        )
    for name in declared:
        remote = workflow.remote_job(name)
        if remote is not None:
            which |= Q(job__pipeline_id=remote.pipeline_id, job__name=remote.job)
    # Permutations of one job in one event run side by side; they never block each other.
    return (
        Build.objects.filter(which, status__in=[BuildStatus.QUEUED, BuildStatus.RUNNING])
        .exclude(pk=build.pk)
        .exclude(event_id=build.event_id, job_id=build.job_id)
    )


def hold_blocked(build_ids: list[int]) -> tuple[list[int], list[Build]]:
    """Make the QUEUED builds whose blockers are active wait BLOCKED.

    Returns the ids that may run now, and the older waiting builds that collapsed into new
    ones (whose end must be settled).
    """
    to_run = []
    collapsed: list[Build] = []
    for build in Build.objects.filter(pk__in=build_ids).select_related("job", "event"):
        if build.status != BuildStatus.QUEUED or not _blockers(build).exists():
            to_run.append(build.pk)
            continue
        lifecycle.transition(build.pk, BuildStatus.BLOCKED, only_from=[BuildStatus.QUEUED])
        if _annotation_on(build.job_config(), COLLAPSE_BUILDS):
            collapsed += _collapse_older(build)
    return sorted(to_run), collapsed


def _collapse_older(build: Build) -> list[Build]:
    # Only the newest waiting build of a job runs; the older waiting ones become COLLAPSED.
    older = list(
        Build.objects.filter(job_id=build.job_id, status=BuildStatus.BLOCKED, pk__lt=build.pk)
        .exclude(event_id=build.event_id)
        .select_related("event", "job")
    )
    collapsed = []
    for old in older:
        if lifecycle.transition(
            old.pk,
            BuildStatus.COLLAPSED,
            only_from=[BuildStatus.BLOCKED],
            strict=False,
            end_time=timezone.now(),
            status_message=f"Collapsed into build {build.pk} of a newer event.",
        ):
            old.status = BuildStatus.COLLAPSED
            collapsed.append(old)
    return collapsed


def release_blocked(pipeline_id: int) -> list[int]:
    """Queue again the pipeline's BLOCKED builds that nothing blocks now, oldest first."""
    lock_pipeline(pipeline_id)
    released = []
    waiting = Build.objects.filter(job__pipeline_id=pipeline_id, status=BuildStatus.BLOCKED)
    for build in waiting.select_related("job", "event").order_by("pk"):
        if _blockers(build).exists():
            continue
        if lifecycle.transition(
            build.pk, BuildStatus.QUEUED, only_from=[BuildStatus.BLOCKED], strict=False
        ):
            released.append(build.pk)
            live.publish_build(build_id=build.pk)
    return released


def pipelines_with_blocked_builds(*, besides_build_id: int) -> list[int]:
    """The other pipelines that have BLOCKED builds, which this build may have blocked."""
    # Waiting builds are few, and blockedBy has no table of its own: look at the pipelines
    # that have any.
    pipeline_id = Build.objects.filter(pk=besides_build_id).values_list(
        "job__pipeline_id", flat=True
    )
    return list(
        Build.objects.filter(status=BuildStatus.BLOCKED)
        .exclude(job__pipeline_id__in=pipeline_id)
        .values_list("job__pipeline_id", flat=True)
        .distinct()
    )
