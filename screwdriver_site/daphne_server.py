"""daphne, as `python -m daphne` runs it, but its access log never shows a credential, and a
slow client slows a streamed answer down instead of piling it up in the server's memory.

daphne's access log writes each request's full address, query string included, so a client
that passes `?api_token=X` would leave X in the server's log. `sd_serve` (`make run`) and the
test stacks start the server with `python -m screwdriver_site.daphne_server ARGS`, which takes
daphne's own arguments.

daphne hands each chunk of a response to Twisted, which keeps whatever the socket cannot take
yet: a client that reads slowly (or not at all) of a 5 GB artifact would have the server read
the whole file into that buffer. Here the application's `send` of a chunk waits while Twisted
says the connection's send buffer is full (its producer protocol), so the application reads
its next chunk only when the client has taken the last ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import weakref
from typing import Any

from daphne.cli import CommandLineInterface
from daphne.server import Server

from screwdriver_site.redaction import redact_query

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


class RedactingServer(Server):  # type: ignore[misc]
    """daphne's server, handing its access log each address with credentials redacted, and
    making a response's sender wait for the client."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.send_windows: weakref.WeakKeyDictionary[Any, SendWindow] = weakref.WeakKeyDictionary()

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
