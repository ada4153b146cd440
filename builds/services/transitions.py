"""What the launcher, the reaper and people do to a build: run, finish, abort, stop."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from builds import lifecycle, live
from builds.lifecycle import TransitionError
from builds.models import Build, BuildStatus, Step
from builds.secrets import masker_for
from builds.services import freeze
from builds.services.locks import lock_pipeline_of
from builds.services.settle import settle_end
from pipelines.models import Event

# A started launcher has this long to report RUNNING before the reaper gives up on it.
START_GRACE = timedelta(seconds=60)


def lease_until(now: datetime) -> datetime:
    """When a lease renewed at ``now`` lapses."""
    return now + timedelta(seconds=settings.SD_BUILD_LEASE_SECONDS)


@transaction.atomic
def mark_running(*, build_id: int) -> Build:
    """The launcher has started: QUEUED becomes RUNNING and the lease starts."""
    now = timezone.now()
    lifecycle.transition(
        build_id,
        BuildStatus.RUNNING,
        start_time=now,
        lease_expires_at=lease_until(now),
    )
    build = Build.objects.select_related("event").get(pk=build_id)
    lifecycle.refresh_event_status(event=build.event)
    live.publish_build(build_id=build_id)
    return build


def renew_lease(*, build_id: int) -> str:
    """Extend the lease of an active build; return its status so the launcher can stop."""
    now = timezone.now()
    Build.objects.filter(pk=build_id, status__in=[BuildStatus.QUEUED, BuildStatus.RUNNING]).update(
        lease_expires_at=lease_until(now)
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
        # Masked here too: a build token can send its final status and meta directly.
        build = Build.objects.select_related("job", "event").get(pk=build_id)
        fields["meta"] = masker_for(build).meta(meta)
    lock_pipeline_of(build_id)
    lifecycle.transition(build_id, status, only_from=allowed, **fields)
    build = Build.objects.select_related("job", "event").get(pk=build_id)
    settle_end(build)
    live.publish_build(build_id=build_id)
    return build


@transaction.atomic
def abort_build(*, build_id: int, message: str) -> Build:
    """Stop a build: it becomes ABORTED now; its launcher is told to stop after commit."""
    lock_pipeline_of(build_id)
    was = Build.objects.filter(pk=build_id).values_list("status", "job_id").first()
    frozen_job = was[1] if was is not None and was[0] == BuildStatus.FROZEN else None
    if frozen_job is not None:
        message = freeze.frozen_abort_message(message)
    lifecycle.transition(
        build_id,
        BuildStatus.ABORTED,
        end_time=timezone.now(),
        status_message=message[:1024],
        lease_expires_at=None,
    )
    build = Build.objects.select_related("job", "event").get(pk=build_id)
    if frozen_job is not None:
        freeze.forget_release(job_id=frozen_job)
    settle_end(build)
    live.publish_build(build_id=build_id)
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
        lifecycle.refresh_event_status(event=Event.objects.select_for_update().get(pk=event.pk))


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


@transaction.atomic
def update_steps(*, build_id: int, reports: Iterable[tuple[str, dict[str, Any]]]) -> list[Step]:
    """Record several steps' reports at once, in order (the launcher's reports that gathered
    while its previous ones were on their way, or its last ones, sent with its final status);
    a name the build has no step of records nothing, as a resend may name nothing new.
    Returns the steps named, as recorded, in the order first named."""
    reports = list(reports)
    steps = {
        step.name: step
        for step in Step.objects.filter(build_id=build_id, name__in={n for n, _ in reports})
    }
    written = False
    for name, fields in reports:
        step = steps.get(name)
        if step is not None and fields:
            for attr, value in fields.items():
                setattr(step, attr, value)
            step.save(update_fields=list(fields))
            written = True
    if written:
        live.publish_build(build_id=build_id)
    return list({name: steps[name] for name, _fields in reports if name in steps}.values())
