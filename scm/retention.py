"""How long received webhook deliveries are kept: old ones are deleted in batches."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from scm.models import WebhookDelivery

BATCH_SIZE = 1000


def retention_cutoff(*, days: int | None = None, now: datetime | None = None) -> datetime:
    """Return the moment before which a delivery is old enough to delete."""
    keep = settings.SD_WEBHOOK_RETENTION_DAYS if days is None else days
    return (now or timezone.now()) - timedelta(days=keep)


def prune_deliveries(
    *,
    before: datetime,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete deliveries received before `before`; return how many were deleted."""
    # Small batches keep each delete short, so webhooks arriving meanwhile never wait long.
    deleted = 0
    while True:
        ids = list(
            WebhookDelivery.objects.filter(received_at__lt=before)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return deleted
        deleted += WebhookDelivery.objects.filter(pk__in=ids).delete()[0]
        if progress is not None:
            progress(deleted)
