"""WebSockets: the build page's (authenticate, check access, join the build's group, relay) and
the launcher's log socket (authenticate the build token, store each batch, acknowledge it).

The page's client sends `{"type": "subscribe", "step": NAME, "from": N}` for each step it shows; the
consumer answers with the stored lines from N on, then relays live ones as they are saved. A
client that reconnects subscribes again from the line after the last one it has, so nothing is
lost and nothing repeats (it also drops any line numbered below what it has).
"""

from __future__ import annotations

import json
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from rest_framework.exceptions import AuthenticationFailed

from builds import logs
from builds.live import build_group
from builds.live_count import PROCESS_COUNT
from builds.models import Build, Step
from pipelines.models import PipelinePermission
from scm.rights import refresh_scm_role
from screwdriver_site.api.authentication import BearerAuthentication
from screwdriver_site.api.permissions import reporting_refusal

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
# RFC 6455's "message too big".
CLOSE_TOO_BIG = 1009
# The most a launcher's frame may hold, as daphne's own limit (a launcher sends a batch that
# packs bigger over HTTP).
MAX_FRAME_BYTES = 1024 * 1024
# The launcher's token is checked again with the first frame this long after the last check
# (a frame every few milliseconds need not cost a query each).
RECHECK_SECONDS = 1.0


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
        self.counted = True
        await PROCESS_COUNT.opened()

    async def disconnect(self, code: int) -> None:
        if self.counted:
            self.counted = False
            await PROCESS_COUNT.closed()
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


def _authorization(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return ""


def _launcher_refusal(header: str, build_id: int) -> tuple[int, str] | None:
    """Why the handshake's `Authorization` may not stream build `build_id`'s log: the check
    of the log POST (the build's own token, not long after the build ended)."""
    keyword, _, value = header.partition(" ")
    if keyword.lower() != "bearer":
        return CLOSE_UNAUTHENTICATED, "Send Authorization: Bearer with the build's token."
    try:
        principal, _claims = BearerAuthentication().authenticate_token(value.strip())
    except AuthenticationFailed as exc:
        return CLOSE_UNAUTHENTICATED, str(exc.detail)
    refusal = reporting_refusal(principal, build_id)
    return None if refusal is None else (CLOSE_FORBIDDEN, refusal)


@database_sync_to_async
def _check(header: str, build_id: int) -> tuple[int, str] | None:
    return _launcher_refusal(header, build_id)


@database_sync_to_async
def _store(recheck: str | None, build_id: int, text: str) -> tuple[int, str] | dict[str, Any]:
    # The token is checked again (when `recheck` holds the header): it expires, and the build
    # ends, while the socket is open.
    refusal = None if recheck is None else _launcher_refusal(recheck, build_id)
    if refusal is not None:
        return refusal
    try:
        frame = json.loads(text)
    except ValueError:
        frame = None
    return logs.append_frame(build_id=build_id, frame=frame)


class LauncherLogConsumer(AsyncWebsocketConsumer):
    """A build's launcher streams its log batches here while a page watches the build.

    Each frame is one batch of the log POST with its `step`; it is stored by the same service
    (append-only, once per seq, masked, capped, in order), published after commit, and
    answered with `{"type": "stored", step, seq, stored, live}`, or `{"type": "error", step,
    seq, status, message}` with the status the POST would have answered. A token that may not
    report on the build closes the socket with 4401 or 4403 and the reason, at the handshake
    or with a frame (checked again once RECHECK_SECONDS have passed).
    """

    build_id: int
    header = ""
    checked_at = 0.0

    async def connect(self) -> None:
        self.build_id = int(self.scope["url_route"]["kwargs"]["build_id"])
        self.header = _authorization(self.scope)
        refusal = await _check(self.header, self.build_id)
        self.checked_at = time.monotonic()
        # Accepted before being refused, so the launcher reads a close code and a reason rather
        # than a bare HTTP 403.
        await self.accept()
        if refusal is not None:
            await self.close(code=refusal[0], reason=refusal[1])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        text = (
            text_data if text_data is not None else (bytes_data or b"").decode("utf-8", "replace")
        )
        if len(text) > MAX_FRAME_BYTES or len(text.encode("utf-8")) > MAX_FRAME_BYTES:
            await self.close(
                code=CLOSE_TOO_BIG,
                reason=f"A frame holds at most {MAX_FRAME_BYTES} bytes: send bigger ones by HTTP.",
            )
            return
        recheck = time.monotonic() - self.checked_at >= RECHECK_SECONDS
        if recheck:
            self.checked_at = time.monotonic()
        answer = await _store(self.header if recheck else None, self.build_id, text)
        if isinstance(answer, tuple):
            await self.close(code=answer[0], reason=answer[1])
            return
        await self.send(text_data=json.dumps(answer))
