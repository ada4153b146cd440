"""The one module that publishes to the channel layer: log lines and build status, after commit.

Save first, publish second: every publish waits for the transaction that saved the fact, so a
browser never sees a line or a status the database does not have.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "build.update"


def build_group(build_id: int) -> str:
    return f"build-{build_id}"


def publish_lines(*, build_id: int, step: str, lines: list[dict[str, Any]]) -> None:
    """New log lines of a step (`[{n, t, m}]`), sent once the batch is committed."""
    if lines:
        _publish_on_commit(build_id, {"type": "lines", "step": step, "lines": lines})


def publish_build(*, build_id: int) -> None:
    """The build's status and steps changed; subscribers fetch nothing, it is all in the message."""
    transaction.on_commit(lambda: _send(build_id, _build_payload(build_id)))


def _build_payload(build_id: int) -> dict[str, Any]:
    from builds.api.serializers import BuildSerializer
    from builds.models import Build

    build = Build.objects.filter(pk=build_id).prefetch_related("steps").first()
    if build is None:
        return {"type": "gone"}
    return {"type": "build", "build": BuildSerializer(build, context={"with_steps": True}).data}


def _publish_on_commit(build_id: int, payload: dict[str, Any]) -> None:
    transaction.on_commit(lambda: _send(build_id, payload))


def _send(build_id: int, payload: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            build_group(build_id), {"type": MESSAGE_TYPE, "payload": payload}
        )
    except Exception:  # a live view is a convenience: it must never fail the save it follows
        logger.exception("Could not publish an update of build %s", build_id)
