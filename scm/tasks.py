"""django-q2 entry points of the scm app: take ids, call a service."""

from __future__ import annotations

from scm import deliveries, webhooks
from scm.retention import prune_deliveries as prune
from scm.retention import retention_cutoff
from scm.statuses import report_commit_status as report


def process_delivery(delivery_id: int) -> None:
    """Act on one recorded webhook delivery."""
    webhooks.process_delivery(delivery_id=delivery_id)


def redeliver_stuck() -> dict[str, int]:
    """Hand out again the deliveries whose worker died (every minute)."""
    return deliveries.redeliver_stuck()


def report_commit_status(build_id: int) -> None:
    """Show one build's current status on its commit."""
    report(build_id=build_id)


def prune_deliveries() -> int:
    """Delete the webhook deliveries older than SD_WEBHOOK_RETENTION_DAYS (daily schedule)."""
    return prune(before=retention_cutoff())
