"""The ASGI server hands a request body to the application from a spool, not from memory."""

from __future__ import annotations

import asyncio
from typing import Any

from screwdriver_site.daphne_server import CHUNK_BYTES, SpooledQueue


def _drain(queue: SpooledQueue, count: int) -> list[dict[str, Any]]:
    async def receive() -> list[dict[str, Any]]:
        return [await queue.get() for _ in range(count)]

    return asyncio.run(receive())


def test_a_body_put_in_pieces_comes_out_whole_in_chunks_then_the_disconnect() -> None:
    queue = SpooledQueue()
    body = bytes(range(256)) * 4096  # 1 MiB: four chunks
    for start in range(0, len(body), 8192):
        more = start + 8192 < len(body)
        queue.put_nowait(
            {"type": "http.request", "body": body[start : start + 8192], "more_body": more}
        )
    queue.put_nowait({"type": "http.disconnect"})
    messages = _drain(queue, 5)
    assert [len(m["body"]) for m in messages[:4]] == [CHUNK_BYTES] * 4
    assert [m["more_body"] for m in messages[:4]] == [True, True, True, False]
    assert b"".join(m["body"] for m in messages[:4]) == body
    assert messages[4] == {"type": "http.disconnect"}


def test_an_empty_body_is_one_message_that_ends_the_request() -> None:
    queue = SpooledQueue()
    queue.put_nowait({"type": "http.request", "body": b"", "more_body": False})
    assert _drain(queue, 1) == [{"type": "http.request", "body": b"", "more_body": False}]


def test_websocket_messages_pass_through_in_order() -> None:
    queue = SpooledQueue()
    frames = [{"type": "websocket.connect"}, {"type": "websocket.receive", "text": "hi"}]
    for frame in frames:
        queue.put_nowait(frame)
    assert _drain(queue, 2) == frames
