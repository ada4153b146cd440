"""A GET through Django's ASGI handler, as daphne makes it, for tests of streamed answers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from django.core.handlers.asgi import ASGIHandler


async def asgi_get(path: str, token: str, on_first_chunk: Any) -> tuple[int, bytes, int]:
    """GET `path` through Django's ASGI handler; return the status, the body and its chunks.

    `on_first_chunk` is awaited when the first piece of the body reaches the client.
    """
    path, _, query = path.partition("?")
    sent: list[Mapping[str, Any]] = []
    asked: list[bool] = []
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if not asked:
            asked.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await never.wait()  # the client stays: Django listens for a disconnect meanwhile
        return {"type": "http.disconnect"}

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(message)
        bodies = [m for m in sent if m["type"] == "http.response.body"]
        if len(bodies) == 1 and message["type"] == "http.response.body":
            await on_first_chunk()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(path),  # decoded, as servers give it; raw_path keeps the escapes
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    await ASGIHandler()(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body" and m.get("body")]
    return start["status"], b"".join(bodies), len(bodies)
