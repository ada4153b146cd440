"""A build's lifecycle: the one table of which status may follow which, and its one writer.

Every change of `Build.status` goes through `transition` (or `create` for a new build): a
conditional UPDATE that names the statuses the table allows to leave, checks the row count,
and writes the outbox rows of what must follow, in the same transaction. Two writers can
never both win, and a crash after the commit loses nothing that follows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.utils import timezone

from builds import outbox, stats
from builds.models import FAILED_STATUSES, SUCCEEDED_STATUSES, Build, BuildStatus
from pipelines.models import Event

S = BuildStatus

# Which status may follow which. A finished status is final: nothing follows it.
TRANSITIONS: dict[str, frozenset[str]] = {
    # A join waiting for its other parents: promoted when they all succeed, or stopped.
    S.CREATED: frozenset({S.QUEUED, S.ABORTED}),
    # Waiting for a worker: it starts, waits behind a blocker or a freeze window, settles at
    # once (a virtual job), is lost (refused, never started) or stopped.
    S.QUEUED: frozenset({S.RUNNING, S.BLOCKED, S.FROZEN, S.SUCCESS, S.FAILURE, S.ABORTED}),
    # Waiting for a blocker or a freeze window: queued again, given way to a newer build's
    # run of the job, or stopped.
    S.BLOCKED: frozenset({S.QUEUED, S.COLLAPSED, S.ABORTED}),
    S.FROZEN: frozenset({S.QUEUED, S.COLLAPSED, S.ABORTED}),
    # Running: it ends, or its launcher was lost with retries left and it is queued again.
    S.RUNNING: frozenset({S.SUCCESS, S.FAILURE, S.UNSTABLE, S.ABORTED, S.QUEUED}),
    S.SUCCESS: frozenset(),
    S.FAILURE: frozenset(),
    S.ABORTED: frozenset(),
    S.UNSTABLE: frozenset(),
    S.COLLAPSED: frozenset(),
}
# The statuses a build may be created in: waiting for its join's parents, or queued.
INITIAL = frozenset({S.CREATED, S.QUEUED})

# An event's status follows its builds' (see refresh_event_status).
EVENT_STATUS_OF_BUILD = {
    S.ABORTED: Event.Status.ABORTED,
    S.CREATED: None,
    S.FAILURE: Event.Status.FAILURE,
    S.QUEUED: Event.Status.IN_PROGRESS,
    S.RUNNING: Event.Status.IN_PROGRESS,
    S.SUCCESS: Event.Status.SUCCESS,
    S.BLOCKED: Event.Status.IN_PROGRESS,
    S.UNSTABLE: Event.Status.SUCCESS,
    # Decides only when nothing else does: see refresh_event_status.
    S.COLLAPSED: None,
    S.FROZEN: Event.Status.IN_PROGRESS,
}


class TransitionError(Exception):
    """The build is not in a status from which this change is allowed."""

    def __init__(self, build_id: int, target: str, current: str | None) -> None:
        self.current = current
        super().__init__(f"Build {build_id} cannot become {target}: it is {current or 'gone'}.")


def sources_of(target: str) -> frozenset[str]:
    """The statuses from which a build may become ``target``."""
    return frozenset(status for status, nexts in TRANSITIONS.items() if target in nexts)


def transition(
    build_id: int,
    target: str,
    *,
    only_from: Iterable[str] | None = None,
    strict: bool = True,
    **fields: Any,
) -> bool:
    """Move one build to ``target`` if the table allows it from its current status.

    ``only_from`` narrows the table for one caller (the launcher finishes only a RUNNING
    build). Returns whether the build changed; a lost race raises `TransitionError`, or
    returns False when ``strict`` is off.
    """
    allowed = sources_of(target)
    if only_from is not None:
        allowed &= frozenset(only_from)
    updated = Build.objects.filter(pk=build_id, status__in=sorted(allowed)).update(
        status=target, **fields
    )
    if updated == 1:
        stats.stamp(build_id, target, timezone.now())
        outbox.record(build_id=build_id, status=target)
        return True
    if not strict:
        return False
    current = Build.objects.filter(pk=build_id).values_list("status", flat=True).first()
    raise TransitionError(build_id, target, current)


def create(*, status: str, **fields: Any) -> Build:
    """Insert a new build in one of the initial statuses, and record what follows."""
    if status not in INITIAL:
        raise ValueError(f"A build cannot start its life {status}.")
    fields["stats"] = {**stats.initial(status, timezone.now()), **fields.get("stats", {})}
    build = Build.objects.create(status=status, **fields)
    outbox.record(build_id=build.pk, status=status)
    return build


def job_result(builds: Iterable[Build], expected: int) -> str | None:
    """One run of a job, all its permutations: SUCCESS, FAILURE, or None while undecided."""
    builds = list(builds)
    # A job succeeded once every permutation did; one failed permutation fails the job.
    if any(b.status in FAILED_STATUSES for b in builds):
        return S.FAILURE
    if len(builds) >= expected and all(b.status in SUCCEEDED_STATUSES for b in builds):
        return S.SUCCESS
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
        collapsed = collapsed or status == S.COLLAPSED
    new = next((s for s, n in counts.items() if n), None)
    if new is None and collapsed:
        # Every build gave way to a newer event's: the event did not fail, it stopped short of
        # its jobs, which is what ABORTED says (Screwdriver's events have no COLLAPSED).
        new = Event.Status.ABORTED
    if new and event.status != new:
        Event.objects.filter(pk=event.pk).update(status=new)
        event.status = new
    return event.status
