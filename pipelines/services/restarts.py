"""Restarts: a new event from a job of an earlier one."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from builds import services as build_services
from pipelines.models import Event
from pipelines.services.events import Creator, start_event
from pipelines.services.pull_requests import restart_pr


def restart_event(
    *,
    parent_event: Event,
    start_from: str,
    creator: Creator,
    cause_message: str = "",
    meta: dict[str, Any] | None = None,
) -> Event:
    """A new event from a job of an earlier one: its sha, its meta under the new, its group."""
    if parent_event.is_pull_request:
        # A pull request's job restarts as a PR event again, under the same secret rules.
        return restart_pr(parent_event=parent_event, start_from=start_from, creator=creator)
    with transaction.atomic():
        event = start_event(
            pipeline=parent_event.pipeline,
            start_from=start_from,
            creator=creator,
            sha=parent_event.sha,
            cause_message=cause_message,
            parent_event=parent_event,
            meta=build_services.deep_merge(parent_event.meta, meta or {}),
        )
        event.group_event_id = parent_event.group_event_id or parent_event.pk
        event.save(update_fields=["group_event"])
    return event
