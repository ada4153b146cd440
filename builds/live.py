"""The one module that publishes to the channel layer: log lines and build status, after commit.

Save first, publish second: every publish waits for the transaction that saved the fact, so a
browser never sees a line or a status the database does not have.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

from builds.models import Build

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "build.update"

# How a build looks to a browser: the API's representation, which the project's wiring
# (screwdriver_site/wiring.py) sets, so this module publishes it without importing the API.
Renderer = Callable[[Build], dict[str, Any]]
_renderer: list[Renderer] = []


def render_builds_with(renderer: Renderer) -> None:
    """Publish builds as ``renderer`` shows them (the API's serializer, with steps)."""
    _renderer[:] = [renderer]


def _render(build: Build) -> dict[str, Any]:
    if _renderer:
        return _renderer[0](build)
    return {"id": build.pk, "status": build.status}


def build_group(build_id: int) -> str:
    return f"build-{build_id}"


def publish_lines(*, build_id: int, step: str, lines: Callable[[], list[dict[str, Any]]]) -> None:
    """New log lines of a step (`lines()` gives `[{n, t, m}]`), sent once the batch is
    committed; they are not even made when no page watches the build."""

    def send() -> None:
        if watched(build_id) and (shown := lines()):
            _send(build_id, {"type": "lines", "step": step, "lines": shown})

    transaction.on_commit(send)


def publish_build(*, build_id: int) -> None:
    """The build's status and steps changed; subscribers fetch nothing, it is all in the message."""

    def send() -> None:
        if watched(build_id):
            _send(build_id, _build_payload(build_id))

    transaction.on_commit(send)


def watched(build_id: int) -> bool:
    """Whether a page may watch the build: False only when the channel layer can tell nobody
    does (the in-process layer of the embedded default; Redis cannot tell, so it is sent).

    Asked after the commit: a page that joins later reads what was saved from the database
    (the consumer joins the group before it reads), so nothing is lost by not sending.
    """
    layer = get_channel_layer()
    if layer is None:
        return False
    if isinstance(layer, InMemoryChannelLayer):
        return build_group(build_id) in layer.groups
    return True


def _build_payload(build_id: int) -> dict[str, Any]:
    build = Build.objects.filter(pk=build_id).prefetch_related("steps").first()
    if build is None:
        return {"type": "gone"}
    return {"type": "build", "build": _render(build)}


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
