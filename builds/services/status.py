"""The primitives every status change uses: the conditional UPDATE, row locks, event status."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from builds.models import Build, BuildStatus
from pipelines.models import Event, Pipeline

EVENT_STATUS_OF_BUILD = {
    BuildStatus.ABORTED: Event.Status.ABORTED,
    BuildStatus.CREATED: None,
    BuildStatus.FAILURE: Event.Status.FAILURE,
    BuildStatus.QUEUED: Event.Status.IN_PROGRESS,
    BuildStatus.RUNNING: Event.Status.IN_PROGRESS,
    BuildStatus.SUCCESS: Event.Status.SUCCESS,
    BuildStatus.BLOCKED: Event.Status.IN_PROGRESS,
    BuildStatus.UNSTABLE: Event.Status.SUCCESS,
    # Decides only when nothing else does: see refresh_event_status.
    BuildStatus.COLLAPSED: None,
    BuildStatus.FROZEN: Event.Status.IN_PROGRESS,
}

_FAILED = frozenset({BuildStatus.FAILURE, BuildStatus.ABORTED, BuildStatus.COLLAPSED})
_SUCCEEDED = frozenset({BuildStatus.SUCCESS, BuildStatus.UNSTABLE})


class TransitionError(Exception):
    """The build is not in a status from which this change is allowed."""

    def __init__(self, build_id: int, target: str, current: str | None) -> None:
        self.current = current
        super().__init__(f"Build {build_id} cannot become {target}: it is {current or 'gone'}.")


def _transition(build_id: int, *, allowed: Iterable[str], target: str, **fields: Any) -> None:
    updated = Build.objects.filter(pk=build_id, status__in=list(allowed)).update(
        status=target, **fields
    )
    if updated != 1:
        current = Build.objects.filter(pk=build_id).values_list("status", flat=True).first()
        raise TransitionError(build_id, target, current)


def _lock_pipeline(pipeline_id: int) -> None:
    # Blocking decisions of every event of a pipeline are taken one at a time.
    Pipeline.objects.select_for_update().filter(pk=pipeline_id).values_list("pk").first()


def _lock_pipeline_of(build_id: int) -> None:
    # Lock order everywhere: the pipeline, then the build, then its event; a build that ends
    # may release BLOCKED builds of other events, which takes the pipeline's lock anyway.
    pipeline_id = Build.objects.filter(pk=build_id).values_list("job__pipeline_id", flat=True)
    first = pipeline_id.first()
    if first is not None:
        _lock_pipeline(first)


def _job_outcome(builds: list[Build], expected: int) -> str | None:
    # A job succeeded once every permutation did; one failed permutation fails the job.
    if any(b.status in _FAILED for b in builds):
        return BuildStatus.FAILURE
    if len(builds) >= expected and all(b.status in _SUCCEEDED for b in builds):
        return BuildStatus.SUCCESS
    return None


def refresh_event_status(*, event: Event) -> str:
    """Derive the event's status from its builds, as Screwdriver does, and store it."""
    counts = {
        Event.Status.IN_PROGRESS: 0,
        Event.Status.ABORTED: 0,
        Event.Status.FAILURE: 0,
        Event.Status.SUCCESS: 0,
    }
    collapsed = False
    for status in Build.objects.filter(event=event).values_list("status", flat=True):
        mapped = EVENT_STATUS_OF_BUILD.get(BuildStatus(status))
        if mapped:
            counts[mapped] += 1
        collapsed = collapsed or status == BuildStatus.COLLAPSED
    new = next((s for s, n in counts.items() if n), None)
    if new is None and collapsed:
        # Every build gave way to a newer event's: the event did not fail, it stopped short of
        # its jobs, which is what ABORTED says (Screwdriver's events have no COLLAPSED).
        new = Event.Status.ABORTED
    if new and event.status != new:
        Event.objects.filter(pk=event.pk).update(status=new)
        event.status = new
    return event.status
