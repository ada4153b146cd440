"""Every change of a build's state: creation, transitions, completion and what it triggers.

Only this module changes `Build.status`. Each transition is a conditional UPDATE that names
the statuses it may leave, and checks the row count, so two writers can never both win.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from builds import live
from builds.models import ACTIVE_STATUSES, Build, BuildStatus, Step
from pipelines import workflow
from pipelines.models import Event, Job

logger = logging.getLogger(__name__)

TIMEOUT_ANNOTATION = "screwdriver.cd/timeout"
SETUP_STEP = "sd-setup-scm"
# A started launcher has this long to report RUNNING before the reaper gives up on it.
START_GRACE = timedelta(seconds=60)

EVENT_STATUS_OF_BUILD = {
    BuildStatus.ABORTED: Event.Status.ABORTED,
    BuildStatus.CREATED: None,
    BuildStatus.FAILURE: Event.Status.FAILURE,
    BuildStatus.QUEUED: Event.Status.IN_PROGRESS,
    BuildStatus.RUNNING: Event.Status.IN_PROGRESS,
    BuildStatus.SUCCESS: Event.Status.SUCCESS,
    BuildStatus.BLOCKED: Event.Status.IN_PROGRESS,
    BuildStatus.UNSTABLE: Event.Status.SUCCESS,
    BuildStatus.COLLAPSED: None,
    BuildStatus.FROZEN: Event.Status.IN_PROGRESS,
}


class TransitionError(Exception):
    """The build is not in a status from which this change is allowed."""

    def __init__(self, build_id: int, target: str, current: str | None) -> None:
        self.current = current
        super().__init__(f"Build {build_id} cannot become {target}: it is {current or 'gone'}.")


# --- creation -----------------------------------------------------------------------------


def timeout_seconds_of(annotations: dict[str, Any]) -> float:
    """Minutes from `screwdriver.cd/timeout` (default and cap from settings), in seconds."""
    raw = annotations.get(TIMEOUT_ANNOTATION)
    minutes = settings.SD_DEFAULT_TIMEOUT_MINUTES
    if raw is not None:
        try:
            minutes = float(raw)
        except (TypeError, ValueError):
            minutes = settings.SD_DEFAULT_TIMEOUT_MINUTES
    if minutes <= 0:
        minutes = settings.SD_DEFAULT_TIMEOUT_MINUTES
    return min(minutes, settings.SD_MAX_TIMEOUT_MINUTES) * 60


def skips_checkout(config: dict[str, Any]) -> bool:
    """Screwdriver's SD_SKIP_REPOSITORY_CLONE: a job that needs no source (the parse-error job)."""
    return (
        str((config.get("environment") or {}).get("SD_SKIP_REPOSITORY_CLONE", "")).lower() == "true"
    )


def _next_number() -> int:
    # Screwdriver numbers builds by their creation time in milliseconds.
    return int(time.time() * 1000)


def create_build(
    *,
    event: Event,
    job: Job,
    status: BuildStatus = BuildStatus.QUEUED,
    cause: str = "",
    parent_build: Build | None = None,
    parent_builds: dict[str, Any] | None = None,
    permutation: int = 0,
) -> Build:
    """Create a build of one job permutation, with its steps, from the event's config."""
    permutations = event.job_configs.get(job.name) or job.permutations
    config: dict[str, Any] = permutations[permutation] if permutations else {}
    build = Build.objects.create(
        job=job,
        event=event,
        permutation=permutation,
        parent_build=parent_build,
        parent_builds=parent_builds or {},
        number=_next_number(),
        cause=cause[:512],
        sha=event.sha,
        container=str(config.get("image", ""))[:256],
        status=status,
        environment=config.get("environment") or {},
        timeout_seconds=timeout_seconds_of(config.get("annotations") or {}),
    )
    setup = [] if skips_checkout(config) else [(SETUP_STEP, "")]
    commands = setup + [
        (str(c.get("name", "")), str(c.get("command", ""))) for c in config.get("commands", [])
    ]
    Step.objects.bulk_create(
        Step(build=build, position=i, name=name[:64], command=command)
        for i, (name, command) in enumerate(commands)
    )
    return build


def create_start_builds(*, event: Event, job_names: Iterable[str], cause: str) -> list[Build]:
    """Queue the first builds of a new event and hand them to the workers after commit."""
    jobs = {
        j.name: j
        for j in Job.objects.filter(pipeline_id=event.pipeline_id, name__in=list(job_names))
    }
    builds = []
    for name in job_names:
        job = jobs.get(name)
        if job is None or job.archived or job.state == Job.State.DISABLED:
            continue
        builds.append(create_build(event=event, job=job, cause=cause))
    _dispatch([b.pk for b in builds])
    return builds


# --- transitions from the launcher ---------------------------------------------------------


def _transition(build_id: int, *, allowed: Iterable[str], target: str, **fields: Any) -> None:
    updated = Build.objects.filter(pk=build_id, status__in=list(allowed)).update(
        status=target, **fields
    )
    if updated != 1:
        current = Build.objects.filter(pk=build_id).values_list("status", flat=True).first()
        raise TransitionError(build_id, target, current)


def _lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.SD_BUILD_LEASE_SECONDS)


@transaction.atomic
def mark_running(*, build_id: int) -> Build:
    """The launcher has started: QUEUED becomes RUNNING and the lease starts."""
    now = timezone.now()
    _transition(
        build_id,
        allowed=[BuildStatus.QUEUED],
        target=BuildStatus.RUNNING,
        start_time=now,
        lease_expires_at=_lease_until(now),
    )
    build = Build.objects.select_related("event").get(pk=build_id)
    refresh_event_status(event=build.event)
    live.publish_build(build_id=build_id)
    return build


def renew_lease(*, build_id: int) -> str:
    """Extend the lease of an active build; return its status so the launcher can stop."""
    now = timezone.now()
    Build.objects.filter(pk=build_id, status__in=[BuildStatus.QUEUED, BuildStatus.RUNNING]).update(
        lease_expires_at=_lease_until(now)
    )
    status = Build.objects.filter(pk=build_id).values_list("status", flat=True).first()
    return status or BuildStatus.ABORTED


@transaction.atomic
def finish_build(
    *,
    build_id: int,
    status: str,
    meta: dict[str, Any] | None = None,
    message: str = "",
    allowed: Iterable[str] = (BuildStatus.RUNNING,),
) -> Build:
    """A build ended: record it, merge its meta into the event, and start what comes next."""
    if status not in {BuildStatus.SUCCESS, BuildStatus.FAILURE, BuildStatus.UNSTABLE}:
        raise ValueError(f"{status} is not a final status a build can report.")
    fields: dict[str, Any] = {
        "end_time": timezone.now(),
        "status_message": message[:1024],
        "lease_expires_at": None,
    }
    if meta is not None:
        fields["meta"] = meta
    _transition(build_id, allowed=allowed, target=status, **fields)
    build = Build.objects.select_related("job", "event").get(pk=build_id)
    _after_finish(build)
    live.publish_build(build_id=build_id)
    return build


@transaction.atomic
def abort_build(*, build_id: int, message: str) -> Build:
    """Stop a build: it becomes ABORTED now; its launcher is told to stop after commit."""
    _transition(
        build_id,
        allowed=[BuildStatus.CREATED, *ACTIVE_STATUSES],
        target=BuildStatus.ABORTED,
        end_time=timezone.now(),
        status_message=message[:1024],
        lease_expires_at=None,
    )
    build = Build.objects.select_related("job", "event").get(pk=build_id)
    _after_finish(build)
    live.publish_build(build_id=build_id)
    from executors.services import enqueue_stop

    enqueue_stop(build.pk)
    return build


def stop_event(*, event: Event, message: str) -> None:
    """Abort every active build of an event and drop the joins that were waiting."""
    for build_id in Build.objects.filter(event=event).active().values_list("pk", flat=True):
        try:
            abort_build(build_id=build_id, message=message)
        except TransitionError:
            continue  # it finished meanwhile: nothing to stop
    with transaction.atomic():
        Build.objects.filter(event=event, status=BuildStatus.CREATED).delete()
        refresh_event_status(event=Event.objects.select_for_update().get(pk=event.pk))


@transaction.atomic
def fail_lost_build(*, build_id: int, message: str) -> Build | None:
    """The reaper's verdict on a build whose launcher stopped reporting."""
    try:
        return finish_build(
            build_id=build_id,
            status=BuildStatus.FAILURE,
            message=message,
            allowed=[BuildStatus.QUEUED, BuildStatus.RUNNING],
        )
    except TransitionError:
        return None


def update_step(*, step: Step, **fields: Any) -> Step:
    """Record a step's start, end or exit code as its launcher reports them."""
    for attr, value in fields.items():
        setattr(step, attr, value)
    step.save(update_fields=list(fields))
    # The build page shows step starts, exit codes and durations as they happen.
    live.publish_build(build_id=step.build_id)
    return step


# --- completion: meta, next jobs, joins ----------------------------------------------------


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _after_finish(build: Build) -> None:
    # Joins are decided under the event's lock, re-reading the parents from the database, so
    # two parents finishing at once see each other and exactly one of them queues the join.
    event = Event.objects.select_for_update().get(pk=build.event_id)
    if build.meta:
        event.meta = deep_merge(event.meta, build.meta)
        event.save(update_fields=["meta"])
    if build.status in {BuildStatus.SUCCESS, BuildStatus.UNSTABLE}:
        _trigger_next(build, event)
    else:
        _drop_waiting_joins(build, event)
    refresh_event_status(event=event)
    from executors.services import enqueue_cleanup

    enqueue_cleanup(build.pk)


def _parent_builds_entry(event: Event, builds: Mapping[str, Build | None]) -> dict[str, Any]:
    return {
        str(event.pipeline_id): {
            "eventId": event.pk,
            "jobs": {name: (b.pk if b else None) for name, b in builds.items()},
        }
    }


def _next_jobs(event: Event, job_name: str) -> list[workflow.NextJob]:
    # A job missing from the event's graph (say, the fallback job of a broken file) has
    # nothing after it.
    try:
        return workflow.next_jobs(event.workflow_graph, job_name)
    except ValueError:
        return []


def _trigger_next(build: Build, event: Event) -> None:
    nexts = _next_jobs(event, build.job.name)
    if not nexts:
        return
    names = {n.name for n in nexts} | {p for n in nexts for p in n.parents}
    jobs = {j.name: j for j in Job.objects.filter(pipeline_id=event.pipeline_id, name__in=names)}
    existing = {
        b.job.name: b
        for b in Build.objects.filter(
            event=event, job__name__in=names, permutation=0
        ).select_related("job")
    }
    to_dispatch: list[int] = []
    for nxt in nexts:
        job = jobs.get(nxt.name)
        if job is None or job.archived or job.state == Job.State.DISABLED:
            continue
        current = existing.get(nxt.name)
        if not nxt.join:
            if current is None:
                new = _create_once(
                    event=event,
                    job=job,
                    status=BuildStatus.QUEUED,
                    cause=f"Triggered by {build.job.name}",
                    parent_build=build,
                    parent_builds=_parent_builds_entry(event, {build.job.name: build}),
                )
                if new is not None:
                    to_dispatch.append(new.pk)
            continue
        parents = {name: existing.get(name) for name in nxt.parents}
        parents[build.job.name] = build
        statuses = {name: (b.status if b else None) for name, b in parents.items()}
        if any(
            s in {BuildStatus.FAILURE, BuildStatus.ABORTED, BuildStatus.COLLAPSED}
            for s in statuses.values()
        ):
            _delete_if_waiting(current)
            continue
        ready = all(s in {BuildStatus.SUCCESS, BuildStatus.UNSTABLE} for s in statuses.values())
        parent_builds = _parent_builds_entry(event, parents)
        if current is None:
            new = _create_once(
                event=event,
                job=job,
                status=BuildStatus.QUEUED if ready else BuildStatus.CREATED,
                cause=f"Triggered by {', '.join(sorted(parents))}",
                parent_build=build,
                parent_builds=parent_builds,
            )
            if new is not None and ready:
                to_dispatch.append(new.pk)
        elif ready and current.status == BuildStatus.CREATED:
            promoted = Build.objects.filter(pk=current.pk, status=BuildStatus.CREATED).update(
                status=BuildStatus.QUEUED, parent_build=build, parent_builds=parent_builds
            )
            if promoted:
                to_dispatch.append(current.pk)
    _dispatch(to_dispatch)


def _create_once(**kwargs: Any) -> Build | None:
    # The unique constraint (event, job, permutation) is the last word on "exactly once".
    try:
        with transaction.atomic():
            return create_build(**kwargs)
    except IntegrityError:
        return None


def _delete_if_waiting(build: Build | None) -> None:
    if build is not None:
        Build.objects.filter(pk=build.pk, status=BuildStatus.CREATED).delete()


def _drop_waiting_joins(build: Build, event: Event) -> None:
    # A failed parent means its joins can never run: remove the builds that waited for it.
    joins = [n.name for n in _next_jobs(event, build.job.name) if n.join]
    if joins:
        Build.objects.filter(event=event, job__name__in=joins, status=BuildStatus.CREATED).delete()


def refresh_event_status(*, event: Event) -> str:
    """Derive the event's status from its builds, as Screwdriver does, and store it."""
    counts = {
        Event.Status.IN_PROGRESS: 0,
        Event.Status.ABORTED: 0,
        Event.Status.FAILURE: 0,
        Event.Status.SUCCESS: 0,
    }
    for status in Build.objects.filter(event=event).values_list("status", flat=True):
        mapped = EVENT_STATUS_OF_BUILD.get(BuildStatus(status))
        if mapped:
            counts[mapped] += 1
    new = next((s for s, n in counts.items() if n), None)
    if new and event.status != new:
        Event.objects.filter(pk=event.pk).update(status=new)
        event.status = new
    return event.status


def _dispatch(build_ids: list[int]) -> None:
    if build_ids:
        from executors.services import enqueue_start

        enqueue_start(build_ids)
