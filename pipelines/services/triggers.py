"""Remote triggers and joins (`~sd@ID:job`, `sd@ID:job`): other pipelines' jobs that follow.

Run by the outbox after a build ends (see screwdriver_site/wiring.py), never in the request
that ended it: other pipelines' repositories are read here.
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction

from builds import lifecycle
from builds.models import FAILED_STATUSES, Build, BuildStatus, RemoteStart
from builds.services import (
    deep_merge,
    lock_pipeline,
    permutation_count,
    release_remotely_blocked,
    remote_parent_ended,
    skips_further,
)
from pipelines import workflow
from pipelines.models import Event, Pipeline, Trigger
from pipelines.services.events import Creator, start_event
from pipelines.services.pipelines import PipelineError

logger = logging.getLogger(__name__)

# How many remote hops back a new remote event looks for its own pipeline (a trigger loop).
MAX_REMOTE_CHAIN = 50


def run_remote_triggers(*, build_id: int) -> None:
    """The worker's half of a build's end: remote triggers and joins, then remote releases.

    Safe to run again for one build: a job's run starts a pipeline once, as the unique
    `RemoteStart` row decides, and a join counts the same arrival only once.
    """
    try:
        trigger_remote_jobs(build_id=build_id)
    finally:
        # Builds elsewhere that this one blocked run even when a trigger failed.
        release_remotely_blocked(build_id=build_id)


def trigger_remote_jobs(*, build_id: int) -> list[Event]:
    """Start or join the other pipelines' jobs that require this build's job."""
    build = Build.objects.select_related("job__pipeline", "event").filter(pk=build_id).first()
    if build is None:
        return []
    source = f"sd@{build.job.pipeline_id}:{build.job.name}"
    triggers = [
        trigger
        for trigger in Trigger.objects.filter(src__in=[f"~{source}", source]).select_related(
            "pipeline__creator"
        )
        if _may_feed(build.job.pipeline, trigger.pipeline)
    ]
    if not triggers or skips_further(build.event):
        return []
    siblings = list(Build.objects.filter(event_id=build.event_id, job_id=build.job_id))
    outcome = lifecycle.job_result(siblings, permutation_count(build.event, build.job))
    if outcome is None:
        return []  # other permutations of the job are still running
    if outcome != BuildStatus.SUCCESS:
        build = next((b for b in siblings if b.status in FAILED_STATUSES), build)
    started: list[Event] = []
    started_in: set[int] = set()
    for trigger in triggers:
        dest = workflow.remote_job(trigger.dest)
        if dest is None:
            continue
        if dest.join:
            _remote_join_arrived(trigger.pipeline, dest.job, build, source, outcome)
        elif outcome == BuildStatus.SUCCESS and trigger.pipeline_id not in started_in:
            # One event per pipeline starts every job there that requires this one.
            started_in.add(trigger.pipeline_id)
            event = _start_remote_event(trigger.pipeline, trigger.src, build)
            if event is not None:
                started.append(event)
    return started


def _may_feed(upstream: Pipeline, downstream: Pipeline) -> bool:
    if upstream.may_feed(downstream):
        return True
    logger.warning(
        "Pipeline %s is private and the creator of pipeline %s cannot read it: its trigger "
        "does not fire there.",
        upstream.pk,
        downstream.pk,
    )
    return False


def _remote_chain(event: Event) -> set[int]:
    # The pipelines of this event and of the events whose builds started it, remote hop by hop.
    seen = {event.pipeline_id}
    parent = event.parent_build_id
    for _ in range(MAX_REMOTE_CHAIN):
        if parent is None:
            break
        row = (
            Build.objects.filter(pk=parent)
            .values_list("event__pipeline_id", "event__parent_build_id")
            .first()
        )
        if row is None:
            break
        seen.add(row[0])
        parent = row[1]
    return seen


def _start_remote_event(pipeline: Pipeline, src: str, build: Build) -> Event | None:
    if pipeline.state != Pipeline.State.ACTIVE:
        logger.info("Pipeline %s is %s: %s does not start it", pipeline.pk, pipeline.state, src)
        return None
    if pipeline.pk in _remote_chain(build.event):
        logger.warning("Remote trigger loop: %s would start pipeline %s again", src, pipeline.pk)
        return None
    entry = {
        str(build.job.pipeline_id): {"eventId": build.event_id, "jobs": {build.job.name: build.pk}}
    }
    creator = build.event.creator or {}
    try:
        with transaction.atomic():
            lock_pipeline(pipeline.pk)
            if not _claim_remote_start(pipeline, build):
                return None  # a re-run, or another permutation's report, got here first
            event = start_event(
                pipeline=pipeline,
                start_from=src,
                creator=Creator(
                    name=str(creator.get("name") or "Screwdriver"),
                    username=str(creator.get("username") or "sd:scheduler"),
                ),
                cause_message=f"Triggered by sd@{build.job.pipeline_id}:{build.job.name}",
            )
            Event.objects.filter(pk=event.pk).update(parent_build=build, parent_builds=entry)
            Build.objects.filter(event=event, parent_build__isnull=True).update(
                parent_build=build, parent_builds=entry
            )
    except PipelineError as exc:
        logger.info("%s started nothing in pipeline %s: %s", src, pipeline.pk, exc.message)
        return None
    event.refresh_from_db()
    return event


def _claim_remote_start(pipeline: Pipeline, build: Build) -> bool:
    # The unique constraint, not a read, decides: a run of a job starts a pipeline once, and a
    # start that fails later (its file is broken...) rolls its claim back with it.
    try:
        with transaction.atomic():
            RemoteStart.objects.create(
                source_event_id=build.event_id, source_job_id=build.job_id, pipeline=pipeline
            )
    except IntegrityError:
        return False
    return True


def _remote_join_arrived(
    pipeline: Pipeline, job_name: str, build: Build, source: str, outcome: str
) -> None:
    # A remote job is one parent of a join in ``pipeline``: it counts in the event that
    # started its own event (a join back), else in the newest event whose join waits for it.
    back = ((build.event.parent_builds or {}).get(str(pipeline.pk)) or {}).get("eventId")
    with transaction.atomic():
        lock_pipeline(pipeline.pk)
        target = None
        if back is not None:
            target = Event.objects.select_for_update().filter(pk=back, pipeline=pipeline).first()
        if target is None:
            waiting = (
                Build.objects.filter(
                    job__pipeline_id=pipeline.pk, job__name=job_name, status=BuildStatus.CREATED
                )
                .order_by("-event_id")
                .values_list("event_id", flat=True)
                .first()
            )
            if waiting is not None:
                target = Event.objects.select_for_update().get(pk=waiting)
        if target is None:
            return
        heard = {
            str(build.job.pipeline_id): {
                "eventId": build.event_id,
                "jobs": {build.job.name: build.pk},
            }
        }
        target.parent_builds = deep_merge(target.parent_builds or {}, heard)
        target.save(update_fields=["parent_builds"])
        remote_parent_ended(build, target, source, outcome)
        lifecycle.refresh_event_status(event=target)
