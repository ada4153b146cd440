"""django-q2 entry points: take an id, call a service. Nothing else lives here."""

from __future__ import annotations

from builds import outbox, retention
from pipelines.services import run_remote_triggers


def dispatch_outbox(ids: list[int]) -> int:
    """Run the outbox rows a status change just wrote (nudged after its commit)."""
    return outbox.dispatch_nudged(ids)


def sweep_outbox() -> dict[str, int]:
    """Run every outbox row whose nudge or claim was lost (every minute)."""
    return outbox.sweep()


def prune_outputs() -> dict[str, int]:
    """Delete artifacts and caches older than SD_OUTPUTS_RETENTION_DAYS (daily schedule)."""
    before = retention.retention_cutoff()
    if before is None:
        return retention.PruneReport().as_dict()
    return retention.prune_outputs(before=before).as_dict()


def trigger_remote_jobs(build_id: int) -> None:
    # Tasks queued before the outbox existed still name this entry point.
    run_remote_triggers(build_id=build_id)
