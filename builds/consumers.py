"""WebSocket for the build page: authenticate, check access, join the build's group, relay.

The client sends `{"type": "subscribe", "step": NAME, "from": N}` for each step it shows; the
consumer answers with the stored lines from N on, then relays live ones as they are saved. A
client that reconnects subscribes again from the line after the last one it has, so nothing is
lost and nothing repeats (it also drops any line numbered below what it has).
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from builds import logs
from builds.live import LIVE_CONNECTIONS, build_group
from builds.models import Build, Step
from pipelines.models import PipelinePermission
from scm.rights import refresh_scm_role

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


@database_sync_to_async
def _visible(user: Any, build_id: int) -> bool:
    # The same rule as the build page: a public pipeline, or a role on a private one.
    if not (user and user.is_authenticated):
        return False
    build = Build.objects.select_related("job__pipeline").filter(pk=build_id).first()
    if build is None:
        return False
    pipeline = build.job.pipeline
    # As the build page does: an SCM role counts only as recently asked.
    refresh_scm_role(user=user, pipeline=pipeline)
    return pipeline.is_public or pipeline.has_right(user, PipelinePermission.Role.PULL)


@database_sync_to_async
def _backlog(build_id: int, step_name: str, start: int) -> list[list[dict[str, Any]]]:
    step = Step.objects.filter(build_id=build_id, name=step_name).first()
    if step is None:
        return []
    pages: list[list[dict[str, Any]]] = []
    while True:
        page = logs.read_page(step=step, start=start, pages=10)
        if not page.lines:
            return pages
        pages.append([{k: line[k] for k in ("n", "t", "m")} for line in page.lines])
        start = page.lines[-1]["n"] + 1


class BuildConsumer(AsyncJsonWebsocketConsumer):
    """Streams one build's log lines and status changes to a browser."""

    build_id: int
    counted = False

    async def connect(self) -> None:
        self.build_id = int(self.scope["url_route"]["kwargs"]["build_id"])
        user = self.scope.get("user")
        if not (user and user.is_authenticated):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await _visible(user, self.build_id):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        # Join before reading the backlog: a line saved in between then arrives twice at worst
        # (the client drops it), never zero times.
        await self.channel_layer.group_add(build_group(self.build_id), self.channel_name)
        await self.accept()
        LIVE_CONNECTIONS.inc()
        self.counted = True

    async def disconnect(self, code: int) -> None:
        if self.counted:
            LIVE_CONNECTIONS.dec()
            self.counted = False
        if getattr(self, "build_id", None) is not None:
            await self.channel_layer.group_discard(build_group(self.build_id), self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "subscribe":
            return
        step = content.get("step")
        start = content.get("from", 0)
        if not isinstance(step, str) or not isinstance(start, int) or start < 0:
            await self.send_json(
                {"type": "error", "message": "subscribe needs a step and a from >= 0"}
            )
            return
        for lines in await _backlog(self.build_id, step, start):
            await self.send_json({"type": "lines", "step": step, "lines": lines})

    async def build_update(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])
