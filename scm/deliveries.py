"""Webhook deliveries from any SCM: recorded once, acted on at least once, with effects once.

A verified delivery is stored (its unique (scm, delivery id) refuses a resend, and its unique
(scm, SHA-256 of the body) a captured body replayed under a new delivery id) and handed to a
worker. The worker claims it for CLAIM_LEASE with a conditional update, runs the SCM's handler
and records the outcome. A worker that dies on the way leaves the delivery QUEUED with a
lapsed claim, and `redeliver_stuck` (or the queue's own retry) hands it to a worker again.

What a handler starts is keyed by the delivery (`Event.delivery_key`, unique per pipeline):
run again, it finds the events the dead worker started and starts only the missing ones. The
handler's reads from GitHub or GitLab happen outside any transaction, as for any event.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.tasks import async_task

from pipelines.models import Event
from scm.base import ScmError
from scm.models import WebhookDelivery
from screwdriver_site.ids import MAX_INT

logger = logging.getLogger(__name__)

# django-q2 ends a task after 60 s: a claim older than this belongs to a worker that is gone.
CLAIM_LEASE = timedelta(seconds=90)
# A delivery handed out this long ago and never claimed lost its task on the way.
REDELIVER_AFTER = timedelta(minutes=2)
# A delivery claimed this many times without an outcome is given up on: it kills its worker.
MAX_ATTEMPTS = 5

# handler(payload, delivery key) -> the events it started
Handler = Callable[[dict[str, Any], str], list[Event]]
Handlers = Mapping[tuple[str, str], Handler]


class WebhookRejected(Exception):
    """A delivery refused before anything was recorded; status is the HTTP answer."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Received:
    """What receiving a delivery did: queued for the worker, or ignored with a reason."""

    delivery: WebhookDelivery
    queued: bool


def record_delivery(
    *,
    scm: str,
    delivery_id: str,
    event_name: str,
    action: str,
    repository: str,
    body: bytes,
    payload: dict[str, Any],
    ignored_because: str = "",
) -> Received:
    """Store a verified delivery once and hand it to a worker unless it is ignored."""
    body_sha256 = hashlib.sha256(body).hexdigest()
    queued = not ignored_because
    outcome = WebhookDelivery.Outcome.QUEUED if queued else WebhookDelivery.Outcome.IGNORED
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                scm=scm,
                delivery_id=delivery_id,
                event_name=event_name,
                action=action,
                repository=repository,
                payload=payload,
                body_sha256=body_sha256,
                outcome=outcome,
                message=ignored_because,
                enqueued_at=timezone.now() if queued else None,
            )
            if queued:
                pk = delivery.pk
                transaction.on_commit(lambda: _hand_out(pk))
    except IntegrityError as exc:
        if WebhookDelivery.objects.filter(scm=scm, delivery_id=delivery_id).exists():
            message = f"Delivery {delivery_id} was already received."
        else:
            message = (
                f"Delivery {delivery_id} repeats the body of a delivery already received; "
                "it is not acted on again."
            )
        raise WebhookRejected(message, status=409) from exc
    return Received(delivery=delivery, queued=queued)


def _hand_out(delivery_pk: int) -> None:
    async_task("scm.tasks.process_delivery", delivery_pk, task_name=f"hook-{delivery_pk}")


def request_number(raw: Any) -> int:
    """A pull or merge request's number from a payload; 0 when it is not one we can store."""
    try:
        number = int(raw or 0)
    except (TypeError, ValueError):
        return 0
    return number if 0 < number <= MAX_INT else 0


def _claim(delivery_id: int, now: datetime) -> bool:
    """Take a QUEUED delivery nobody holds (or whose holder's claim lapsed)."""
    return bool(
        WebhookDelivery.objects.filter(pk=delivery_id, outcome=WebhookDelivery.Outcome.QUEUED)
        .filter(Q(processed_at__isnull=True) | Q(processed_at__lt=now - CLAIM_LEASE))
        .update(processed_at=now, attempts=F("attempts") + 1)
    )


def process_delivery(*, delivery_id: int, handlers: Handlers) -> WebhookDelivery | None:
    """Act on a recorded delivery; None when it no longer exists (pruned)."""
    claimed = _claim(delivery_id, timezone.now())
    delivery = WebhookDelivery.objects.filter(pk=delivery_id).first()
    if not claimed or delivery is None:
        return delivery
    handler = handlers.get((delivery.event_name, delivery.action)) or handlers.get(
        (delivery.event_name, "")
    )
    key = f"{delivery.scm}:{delivery.delivery_id}"
    try:
        events = handler(delivery.payload, key) if handler else []
    except ScmError as exc:
        delivery.outcome, delivery.message = WebhookDelivery.Outcome.FAILED, str(exc)[:512]
    except Exception:
        # Recorded, not retried: the same error would come back.
        logger.exception("Webhook delivery %s failed", delivery.delivery_id)
        delivery.outcome = WebhookDelivery.Outcome.FAILED
        delivery.message = "The server failed on this delivery; see its log."
    else:
        delivery.outcome = WebhookDelivery.Outcome.DONE
        delivery.events = [event.pk for event in events]
        delivery.message = "; ".join(getattr(events, "notes", []))[:512]
    delivery.save(update_fields=["outcome", "message", "events"])
    return delivery


def redeliver_stuck(*, now: datetime | None = None) -> dict[str, int]:
    """Hand out again the deliveries whose worker died; give up on one that keeps dying."""
    now = now or timezone.now()
    cutoff = now - REDELIVER_AFTER
    lost = Q(processed_at__isnull=True, enqueued_at__lt=cutoff) | Q(
        processed_at__isnull=True, enqueued_at__isnull=True, received_at__lt=cutoff
    )
    dropped = Q(processed_at__lt=now - CLAIM_LEASE) & (
        Q(enqueued_at__lt=cutoff) | Q(enqueued_at__isnull=True)
    )
    stuck = WebhookDelivery.objects.filter(outcome=WebhookDelivery.Outcome.QUEUED).filter(
        lost | dropped
    )
    handed, given_up = 0, 0
    for pk, attempts, enqueued_at in stuck.values_list("pk", "attempts", "enqueued_at"):
        mine = WebhookDelivery.objects.filter(
            pk=pk, outcome=WebhookDelivery.Outcome.QUEUED, enqueued_at=enqueued_at
        )
        if attempts >= MAX_ATTEMPTS:
            given_up += mine.update(
                outcome=WebhookDelivery.Outcome.FAILED,
                message=(
                    f"Given up after {attempts} attempts: the worker stopped while handling "
                    "it each time. See the worker's log."
                ),
            )
        elif mine.update(enqueued_at=now):
            logger.warning("Webhook delivery %s was not finished: handing it out again", pk)
            _hand_out(pk)
            handed += 1
    return {"redelivered": handed, "given_up": given_up}


def scm_of(*, delivery_id: int) -> str | None:
    """Which SCM sent a recorded delivery (None when it was pruned)."""
    return WebhookDelivery.objects.filter(pk=delivery_id).values_list("scm", flat=True).first()
