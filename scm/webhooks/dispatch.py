"""The worker's side of a delivery: its SCM's translator says what it asks for, then act."""

from __future__ import annotations

from functools import partial
from typing import Any

from pipelines.models import Event
from scm import deliveries
from scm.models import WebhookDelivery
from scm.webhooks.actions import Translator, perform
from scm.webhooks.github import GITHUB_TRANSLATORS
from scm.webhooks.gitlab import GITLAB_TRANSLATORS

TRANSLATORS: dict[str, dict[tuple[str, str], Translator]] = {
    "github": GITHUB_TRANSLATORS,
    "gitlab": GITLAB_TRANSLATORS,
}


def _act(translate: Translator, payload: dict[str, Any], key: str) -> list[Event]:
    """A delivery handler: translate the payload into what it asks for, then act on it."""
    return perform(translate(payload), delivery_key=key)


HANDLERS: dict[str, deliveries.Handlers] = {
    scm: {event: partial(_act, translate) for event, translate in translators.items()}
    for scm, translators in TRANSLATORS.items()
}


def process_delivery(*, delivery_id: int) -> WebhookDelivery | None:
    """Act on one recorded delivery with its SCM's translators; None when it was pruned."""
    scm = deliveries.scm_of(delivery_id=delivery_id)
    if scm not in HANDLERS:
        return None
    return deliveries.process_delivery(delivery_id=delivery_id, handlers=HANDLERS[scm])
