"""daphne, as `python -m daphne` runs it, but its access log never shows a credential,
request bodies wait in a spool instead of its memory, and a slow client slows a streamed
answer down instead of piling it up in the server's memory.

daphne's access log writes each request's full address, query string included, so a client
that passes `?api_token=X` would leave X in the server's log. `sd_serve` (`make run`) and the
test stacks start the server with `python -m screwdriver_site.daphne_server ARGS`, which takes
daphne's own arguments.

daphne hands a request's body to the application by putting all of it on the application's
queue at once, before the application reads any: an upload of 1 GiB (a build's artifact)
would be 1 GiB of memory. Here the body goes to a temporary file as it arrives.

daphne hands each chunk of a response to Twisted, which keeps whatever the socket cannot take
yet: a client that reads slowly (or not at all) of a 5 GB artifact would have the server read
the whole file into that buffer. Here the application's `send` of a chunk waits while Twisted
says the connection's send buffer is full (its producer protocol), so the application reads
its next chunk only when the client has taken the last ones.

daphne closes a WebSocket with the application's close code but drops its reason; here the
reason goes too (the launcher's log socket says why it refused a token).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import tempfile
import weakref
from functools import partial
from typing import Any

from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol

from screwdriver_site.redaction import redact_query

# A body stays in memory up to this size; beyond, in a temporary file.
SPOOL_MEMORY_BYTES = 1024 * 1024
# The application receives a spooled body in messages of this size.
CHUNK_BYTES = 256 * 1024


class SpooledQueue:
    """An application's input queue on which a request body waits in a temporary file.

    daphne calls `put_nowait` with every message (the body in 8 KiB pieces, all at once) and
    the application awaits `get`. Body messages are appended to the spool; the last one puts a
    marker on the queue, where the body then begins: `get` hands it out in CHUNK_BYTES
    messages as the application asks, and every other message (a disconnect, WebSocket
    frames) in its order after it.
    """

    _BODY = {"type": "sd.spooled-body"}

    def __init__(self) -> None:
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._spool: Any = None
        self._written = 0
        self._delivering = False

    def put_nowait(self, message: dict[str, Any]) -> None:
        if message.get("type") != "http.request":
            self._queue.put_nowait(message)
            return
        if self._spool is None:
            self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
        body = message.get("body") or b""
        self._spool.seek(0, io.SEEK_END)
        self._spool.write(body)
        self._written += len(body)
        if not message.get("more_body", False):
            self._queue.put_nowait(self._BODY)

    async def get(self) -> dict[str, Any]:
        if not self._delivering:
            message = await self._queue.get()
            if message is not self._BODY:
                return message
            self._delivering = True
            self._spool.seek(0)
        chunk = self._spool.read(CHUNK_BYTES)
        more = self._spool.tell() < self._written
        if not more:
            self._delivering = False
            self._spool.close()
            self._spool, self._written = None, 0
        return {"type": "http.request", "body": chunk, "more_body": more}


# How often a send that waits for a slow client checks whether that client went away.
DISCONNECT_CHECK_SECONDS = 1.0


class SendWindow:
    """A Twisted push producer for one response: closed while its connection's buffer is full.

    Twisted pauses the producers of a connection when the bytes it could not send yet pass
    its buffer size, and resumes them once they are sent; `opened` follows that.
    """

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.opened.set()

    def pauseProducing(self) -> None:
        self.opened.clear()

    def resumeProducing(self) -> None:
        self.opened.set()

    def stopProducing(self) -> None:
        self.opened.set()


# A close frame holds a code (2 bytes) and at most 123 bytes of reason.
MAX_CLOSE_REASON_BYTES = 123


class ReasonedWebSocketProtocol(WebSocketProtocol):  # type: ignore[misc]
    """daphne's WebSocket protocol, closing with the application's reason as well as its code."""

    def handle_reply(self, message: dict[str, Any]) -> None:
        reason = message.get("reason")
        if (
            message.get("type") != "websocket.close"
            or self.state == self.STATE_CONNECTING
            or not isinstance(reason, str)
        ):
            super().handle_reply(message)
            return
        cut = reason.encode("utf-8")[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore")
        self.sendClose(code=message.get("code") or 1000, reason=cut)


class RedactingServer(Server):  # type: ignore[misc]
    """daphne's server, handing its access log each address with credentials redacted, its
    applications their request bodies from a spool, and making a response's sender wait for
    the client."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.send_windows: weakref.WeakKeyDictionary[Any, SendWindow] = weakref.WeakKeyDictionary()

    @property
    def ws_factory(self) -> Any:
        return self.__dict__["ws_factory"]

    @ws_factory.setter
    def ws_factory(self, factory: Any) -> None:
        # daphne makes its factory as it starts serving; its sockets then close with a reason.
        factory.protocol = ReasonedWebSocketProtocol
        self.__dict__["ws_factory"] = factory

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> SpooledQueue | None:
        # daphne's own, but for the queue.
        assert "application_instance" not in self.connections[protocol]
        input_queue = SpooledQueue()
        scope.setdefault("asgi", {"version": "3.0"})
        application_instance = self.application(
            scope=scope,
            receive=input_queue.get,
            send=partial(self.handle_reply, protocol),
        )
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            application_instance, loop=asyncio.get_event_loop()
        )
        return input_queue

    def log_action(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        if isinstance(details.get("path"), str):
            details = {**details, "path": redact_query(details["path"])}
        super().log_action(protocol, action, details)

    async def handle_reply(self, protocol: Any, message: dict[str, Any]) -> None:
        kind = message.get("type")
        window = self.send_windows.get(protocol)
        if kind == "http.response.start" and window is None and _can_register(protocol):
            window = self.send_windows[protocol] = SendWindow()
            protocol.registerProducer(window, True)
        last = kind == "http.response.body" and not message.get("more_body", False)
        if last and window is not None:
            # The request's channel serves the next request of the connection: let it go.
            del self.send_windows[protocol]
            protocol.unregisterProducer()
        await super().handle_reply(protocol, message)
        if window is not None and not last:
            await self._wait_for_room(protocol, window)

    async def _wait_for_room(self, protocol: Any, window: SendWindow) -> None:
        while not window.opened.is_set():
            if self.connections.get(protocol, {}).get("disconnected"):
                return  # Django's handler hears of it and stops sending
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(window.opened.wait(), DISCONNECT_CHECK_SECONDS)


def _can_register(protocol: Any) -> bool:
    # HTTP/1 requests (daphne's WebRequest) take a producer; WebSockets do not send these.
    return hasattr(protocol, "registerProducer") and getattr(protocol, "producer", None) is None


class RedactingCommandLine(CommandLineInterface):  # type: ignore[misc]
    server_class = RedactingServer


def main(argv: list[str]) -> None:
    # The access log goes to stdout: a line as each request ends, not a block now and then.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    RedactingCommandLine().run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
