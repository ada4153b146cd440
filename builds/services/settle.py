"""Settling: what follows a build's end or a build's start, as a stack of work, not a recursion.

An ended build (finished, aborted, collapsed into a newer one, or a virtual job that succeeded
without running) is settled under its event's lock: its meta into the event, the next jobs or
the joins it drops, its stage, the event's status, the builds its end released. New builds
are started through the gates: virtual jobs succeed at once, freeze windows and blockers hold
the others, and what may run is dispatched after commit. Each of those steps may end more
builds (virtual jobs, builds collapsed into newer ones): their settling is pushed as work and
done in turn, one step at a time, until none is left. The rules (`completion`, `stages`, `blocking`,
`freeze`) decide and return; only this module calls them in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

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
    """The work a build's end or a build's start leaves to do, as a stack of steps.

    A step may push more steps; the newest runs first, so what a step starts is settled
    before the step's own remaining work, in the order the rules were always applied: a
    virtual successor is settled (and its own successors started) before its siblings pass
    the gates, and before the ended build's stage and the builds it released are looked at.
    """

    def __init__(self) -> None:
        self.steps: list[Callable[[], None]] = []

    def then(self, step: Callable[[], None]) -> None:
        """Do ``step`` after whatever is pushed later (a stack: newest first)."""
        self.steps.append(step)

    def ended(self, build: Build) -> None:
        """Settle ``build``'s end (finished, aborted, collapsed or virtual) next."""
        self.then(partial(self._settle, build))

    def run(self) -> None:
        """Do every step, and those the steps push, until none is left."""
        while self.steps:
            self.steps.pop()()

    def _settle(self, build: Build) -> None:
        # Joins are decided under the event's lock, re-reading the parents from the database,
        # so two parents finishing at once see each other and exactly one queues the join.
        event = Event.objects.select_for_update().get(pk=build.event_id)
        if build.status == BuildStatus.COLLAPSED:
            # A collapsed build ends outside the finish path, yet what hangs on it settles
            # the same: joins that waited for it are dropped, its stage fails and gets its
            # teardown.
            completion.drop_waiting_joins(build, event)
            self.then(partial(self._after_collapse, build, event))
            self.start(event, stages.settle_stage(build, event))
            return
        if build.meta:
            event.meta = completion.deep_merge(event.meta, build.meta)
            event.save(update_fields=["meta"])
        self.then(partial(self._settle_stage, build, event))
        if build.status in {BuildStatus.SUCCESS, BuildStatus.UNSTABLE}:
            self.start(event, completion.trigger_next(build, event))
        else:
            completion.drop_waiting_joins(build, event)

    def _settle_stage(self, build: Build, event: Event) -> None:
        self.then(partial(self._refresh_and_release, event))
        self.start(event, stages.settle_stage(build, event))

    def _refresh_and_release(self, event: Event) -> None:
        lifecycle.refresh_event_status(event=event)
        self.release(event.pipeline_id)
        # Other pipelines' jobs, the commit status and the engine's clean-up follow from the
        # outbox rows the status change wrote: no lock of this pipeline is held while
        # another's is taken, and no request waits while other repositories are read.

    def _after_collapse(self, old: Build, event: Event) -> None:
        lifecycle.refresh_event_status(event=event)
        live.publish_build(build_id=old.pk)

    def start(self, event: Event, builds: list[Build]) -> None:
        """Start new builds of ``event``: virtual ones settle first, the others pass the gates."""
        if not builds:
            return
        stages.open_stage_builds(event, builds)
        virtual: list[Build] = []
        to_run: list[int] = []
        for build in builds:
            if build.status == BuildStatus.QUEUED and workflow.is_virtual(
                event.workflow_graph, build.job.name
            ):
                virtual.append(build)
            else:
                to_run.append(build.pk)
        self.then(partial(self._admit_and_dispatch, event.pipeline_id, to_run))
        for build in reversed(virtual):
            self.then(partial(self._succeed_virtual, build))

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
        self._settle(build)

    def _admit_and_dispatch(self, pipeline_id: int, build_ids: list[int]) -> None:
        dispatch_builds(self.admit(pipeline_id, build_ids))

    def admit(self, pipeline_id: int, build_ids: list[int]) -> list[int]:
        """Pass QUEUED builds through the freeze windows and blockers; return those that run."""
        if not build_ids:
            return []
        # Blocking decisions of every event of a pipeline are taken one at a time.
        lock_pipeline(pipeline_id)
        build_ids, collapsed = freeze.hold_frozen(build_ids)
        self._collapsed(collapsed)
        build_ids, collapsed = blocking.hold_blocked(build_ids)
        self._collapsed(collapsed)
        return build_ids

    def release(self, pipeline_id: int) -> None:
        """Queue again what the pipeline's ended builds blocked, through the freeze windows."""
        released = blocking.release_blocked(pipeline_id)
        to_run, collapsed = freeze.hold_frozen(released)
        self._collapsed(collapsed)
        dispatch_builds(to_run)

    def _collapsed(self, builds: list[Build]) -> None:
        for build in reversed(builds):
            self.ended(build)


def settle_end(build: Build) -> None:
    """Draw every consequence of ``build``'s end (the caller holds the pipeline's lock)."""
    settlement = Settlement()
    settlement.ended(build)
    settlement.run()


def start_builds(event: Event, builds: list[Build]) -> None:
    """Start builds just created or queued in ``event``, and settle what that ends."""
    settlement = Settlement()
    settlement.start(event, builds)
    settlement.run()


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


def release_after_waits() -> int:
    """Let BLOCKED builds run whose blockers went away without ending: a build of their job
    that has now run for `blockedBySameJobWaitTime` (the reaper calls this each round)."""
    pipeline_ids = list(
        Build.objects.filter(status=BuildStatus.BLOCKED)
        .values_list("job__pipeline_id", flat=True)
        .distinct()
    )
    for pipeline_id in pipeline_ids:
        with transaction.atomic():
            settlement = Settlement()
            settlement.release(pipeline_id)
            settlement.run()
    return len(pipeline_ids)
