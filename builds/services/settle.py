"""Settling: what follows a build's end or a build's start, as a work queue, not a recursion.

An ended build (finished, aborted, collapsed into a newer one, or a virtual job that succeeded
without running) is settled under its event's lock: its meta into the event, the next jobs or
the joins it drops, its stage, the event's status, the builds its end released. New builds
are started through the gates: virtual jobs succeed at once, freeze windows and blockers hold
the others, and what may run is dispatched after commit. Each of those steps may end more
builds (virtual jobs, builds collapsed into newer ones): they join the queue and are settled
in turn, one at a time, until none is left. The rules (`completion`, `stages`, `blocking`,
`freeze`) decide and return; only this module calls them in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from builds import lifecycle, live
from builds.models import Build, BuildStatus, Step
from builds.services import blocking, completion, freeze, stages
from builds.services.creation import create_build, dispatch_builds, permutation_count
from builds.services.locks import lock_pipeline
from pipelines import workflow
from pipelines.models import Event, Job


class Settlement:
    """A queue of ended builds whose consequences are still to be drawn."""

    def __init__(self) -> None:
        self.ended: deque[Build] = deque()

    def run(self) -> None:
        """Settle every ended build in the queue, and those their settling ends."""
        while self.ended:
            build = self.ended.popleft()
            if build.status == BuildStatus.COLLAPSED:
                self._settle_collapsed(build)
            else:
                self._settle(build)

    def _settle(self, build: Build) -> None:
        # Joins are decided under the event's lock, re-reading the parents from the database,
        # so two parents finishing at once see each other and exactly one queues the join.
        event = Event.objects.select_for_update().get(pk=build.event_id)
        if build.meta:
            event.meta = completion.deep_merge(event.meta, build.meta)
            event.save(update_fields=["meta"])
        if build.status in {BuildStatus.SUCCESS, BuildStatus.UNSTABLE}:
            self.start(event, completion.trigger_next(build, event))
        else:
            completion.drop_waiting_joins(build, event)
        self.start(event, stages.settle_stage(build, event))
        lifecycle.refresh_event_status(event=event)
        self.release(event.pipeline_id)
        # Other pipelines' jobs, the commit status and the engine's clean-up follow from the
        # outbox rows the status change wrote: no lock of this pipeline is held while
        # another's is taken, and no request waits while other repositories are read.

    def _settle_collapsed(self, old: Build) -> None:
        # A collapsed build ends outside the finish path, yet what hangs on it settles the
        # same: joins that waited for it are dropped, its stage fails and gets its teardown.
        event = Event.objects.select_for_update().get(pk=old.event_id)
        completion.drop_waiting_joins(old, event)
        self.start(event, stages.settle_stage(old, event))
        lifecycle.refresh_event_status(event=event)
        live.publish_build(build_id=old.pk)

    def start(self, event: Event, builds: list[Build]) -> list[int]:
        """Start new builds of ``event``; return the ids handed to the workers."""
        if not builds:
            return []
        stages.open_stage_builds(event, builds)
        to_run = []
        for build in builds:
            if build.status == BuildStatus.QUEUED and workflow.is_virtual(
                event.workflow_graph, build.job.name
            ):
                self._succeed_virtual(build)
            else:
                to_run.append(build.pk)
        to_run = self.admit(event.pipeline_id, to_run)
        dispatch_builds(to_run)
        return to_run

    def _succeed_virtual(self, build: Build) -> None:
        # Screwdriver never runs a virtual job: it succeeds at once and the next jobs start.
        now = timezone.now()
        lifecycle.transition(
            build.pk,
            BuildStatus.SUCCESS,
            only_from=[BuildStatus.QUEUED],
            start_time=now,
            end_time=now,
            status_message="Virtual job: succeeded without running.",
        )
        Step.objects.filter(build=build).delete()
        build.status = BuildStatus.SUCCESS
        self.ended.append(build)

    def admit(self, pipeline_id: int, build_ids: list[int]) -> list[int]:
        """Pass QUEUED builds through the freeze windows and blockers; return those that run."""
        if not build_ids:
            return []
        # Blocking decisions of every event of a pipeline are taken one at a time.
        lock_pipeline(pipeline_id)
        build_ids, collapsed = freeze.hold_frozen(build_ids)
        self.ended.extend(collapsed)
        build_ids, collapsed = blocking.hold_blocked(build_ids)
        self.ended.extend(collapsed)
        return build_ids

    def release(self, pipeline_id: int) -> list[int]:
        """Queue again what the pipeline's ended builds blocked; return what was dispatched."""
        released = blocking.release_blocked(pipeline_id)
        to_run, collapsed = freeze.hold_frozen(released)
        self.ended.extend(collapsed)
        dispatch_builds(to_run)
        return to_run


def settle_end(build: Build) -> None:
    """Draw every consequence of ``build``'s end (the caller holds the pipeline's lock)."""
    settlement = Settlement()
    settlement.ended.append(build)
    settlement.run()


def start_builds(event: Event, builds: list[Build]) -> list[int]:
    """Start builds just created or queued in ``event``; return the ids sent to workers."""
    settlement = Settlement()
    dispatched = settlement.start(event, builds)
    settlement.run()
    return dispatched


def create_start_builds(*, event: Event, job_names: Iterable[str], cause: str) -> list[Build]:
    """Queue the first builds of a new event and hand them to the workers after commit."""
    names = list(job_names)
    jobs = {j.name: j for j in Job.objects.filter(pipeline_id=event.pipeline_id, name__in=names)}
    builds: list[Build] = []
    for name in names:
        job = jobs.get(name)
        if job is None or job.archived or job.state == Job.State.DISABLED:
            continue
        builds.extend(
            create_build(event=event, job=job, cause=cause, permutation=i)
            for i in range(permutation_count(event, job))
        )
    start_builds(event, builds)
    return builds


def remote_parent_ended(build: Build, event: Event, source: str, outcome: str) -> None:
    """A job of another pipeline (``source``) that a join of ``event`` waits for ended."""
    if outcome == BuildStatus.SUCCESS:
        start_builds(event, completion.trigger_next(build, event, source))
    else:
        completion.drop_waiting_joins(build, event, source)


def release_frozen(*, job_id: int | None = None) -> list[int]:
    """Queue again the FROZEN builds (of one job, or all) whose freeze window has ended.

    Returns the ids queued; a released build blocked by another job waits BLOCKED instead.
    """
    released: list[int] = []
    for pipeline_id in freeze.pipelines_with_frozen_builds(job_id=job_id):
        released += _release_frozen_in(pipeline_id, job_id)
    return released


@transaction.atomic
def _release_frozen_in(pipeline_id: int, job_id: int | None) -> list[int]:
    lock_pipeline(pipeline_id)
    settlement = Settlement()
    to_run: list[int] = []
    thawed = freeze.thaw(pipeline_id=pipeline_id, job_id=job_id)
    for ids in thawed.values():
        # Blocking still applies: a released build waits BLOCKED behind an active blocker.
        to_run += settlement.admit(pipeline_id, ids)
    for ids in thawed.values():
        for build_id in ids:
            live.publish_build(build_id=build_id)
    dispatch_builds(sorted(to_run))
    settlement.run()
    return sorted(to_run)


def release_remotely_blocked(*, build_id: int) -> None:
    """Let other pipelines' BLOCKED builds run if this build was what blocked them."""
    for other in blocking.pipelines_with_blocked_builds(besides_build_id=build_id):
        # Each under its own lock, as a build ending there would.
        with transaction.atomic():
            settlement = Settlement()
            settlement.release(other)
            settlement.run()
