"""A build's `stats`: when it entered the queue, waited, pulled its image, and where it ran.

The keys are Screwdriver's, so its metrics and its users' scripts read them unchanged:
`queueEnterTime` (the build became QUEUED), `blockedStartTime` (it first waited behind a
blocker or a freeze window), `imagePullStartTime` (its engine began pulling the job's image;
only engines that pull one set it) and `hostname` (the machine its launcher runs on). Times
are ISO 8601 UTC strings, as in every other build field. Each key is written once: a build
queued again after waiting keeps the time it first entered the queue, so its queued time
covers the wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from builds.models import Build, BuildStatus

QUEUE_ENTER_TIME = "queueEnterTime"
BLOCKED_START_TIME = "blockedStartTime"
IMAGE_PULL_START_TIME = "imagePullStartTime"
HOSTNAME = "hostname"
# What an engine may report about a start (the rest are the build kernel's own).
ENGINE_KEYS = frozenset({IMAGE_PULL_START_TIME, HOSTNAME})

# The key a status change stamps, when the build enters that status.
STAMPED_BY_STATUS = {
    BuildStatus.QUEUED: QUEUE_ENTER_TIME,
    BuildStatus.BLOCKED: BLOCKED_START_TIME,
}


def iso(moment: datetime) -> str:
    """`moment` as Screwdriver writes times: ISO 8601 in UTC with milliseconds and a Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def initial(status: str, now: datetime) -> dict[str, Any]:
    """The stats a build created in ``status`` starts with."""
    key = STAMPED_BY_STATUS.get(BuildStatus(status))
    return {key: iso(now)} if key else {}


def stamp(build_id: int, status: str, now: datetime) -> None:
    """Record the time a build entered ``status``, if that status has a key not yet set."""
    key = STAMPED_BY_STATUS.get(BuildStatus(status))
    if key:
        record(build_id, {key: iso(now)}, overwrite=False)


@transaction.atomic
def record(build_id: int, values: Mapping[str, Any], *, overwrite: bool = True) -> None:
    """Merge ``values`` into one build's stats (keeping keys already set unless ``overwrite``)."""
    row = Build.objects.select_for_update().filter(pk=build_id).values_list("stats", flat=True)
    current = row.first()
    if current is None:
        return
    merged = dict(current or {})
    for key, value in values.items():
        if overwrite or key not in merged:
            merged[key] = value
    if merged != current:
        Build.objects.filter(pk=build_id).update(stats=merged)


def from_engine(state: Mapping[str, Any]) -> dict[str, Any]:
    """The stats an engine reported with a start (its `stats` entry, only the keys it may set)."""
    reported = state.get("stats")
    if not isinstance(reported, Mapping):
        return {}
    return {k: str(v)[:255] for k, v in reported.items() if k in ENGINE_KEYS and v}
