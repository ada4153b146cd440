"""Log batches over one WebSocket while a page watches the build, over HTTP otherwise.

The launch spec's `logSocket` names the build's log socket. Batches go by HTTP (the log POST)
until its answer says `live`: a page watches. Then a thread opens the socket, and batches go
over it, one frame at a time, each acknowledged before the next (what a step prints meanwhile
goes in the next frame). When the socket cannot open, breaks, or stops answering, the batch it
carried is sent again by HTTP at once: the API stores a batch once per seq, so that resend
neither loses nor repeats a line, and the next batches follow by HTTP until the socket opens
again (after a back-off). When the API has said for UNWATCHED_LINGER seconds that no page
watches, the socket is closed and HTTP takes over.

The socket is the `websockets` package's sync client, imported only when a page first
watches: the import costs more than a build's start should, and the local executor starts
the launcher without site-packages (`python -S`), which are added then.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from .api import ApiError, ConflictError
from .logs import Sender

# The most a frame may hold (the server's limit, and daphne's): a bigger batch goes by HTTP.
MAX_FRAME_BYTES = 1024 * 1024
OPEN_TIMEOUT = 5.0
# A frame not acknowledged within this long counts as a broken socket: it is resent by HTTP.
ACK_TIMEOUT = 10.0
# After the API has said this long that no page watches, the socket is closed.
UNWATCHED_LINGER = 10.0
# After the socket failed, it is tried again this long later, doubling up to MAX_REOPEN.
FIRST_REOPEN = 1.0
MAX_REOPEN = 60.0


class SocketError(Exception):
    """The socket could not open, broke or stopped answering; it is closed."""


class SocketUnavailable(SocketError):
    """No WebSocket client library here: logs go by HTTP only."""


class FrameTooBig(Exception):
    """A batch that packs bigger than MAX_FRAME_BYTES: it goes by HTTP."""


class Socket(Protocol):
    def send(self, step: str, payload: dict[str, Any]) -> dict[str, Any]: ...

    def close(self) -> None: ...


Opener = Callable[[str, str], Socket]


def _client() -> Any:
    try:
        from websockets.sync import client
    except ImportError:
        # Started without site-packages (`python -S`): add them, after the standard library.
        import site

        site.main()
        try:
            from websockets.sync import client
        except ImportError as exc:
            raise SocketUnavailable(
                "the websockets package is not installed: pip install -r requirements.txt"
            ) from exc
    return client


def socket_url(api_base: str, path: str) -> str:
    """The ws:// (or wss://) address of `path` under the API root `api_base` (.../v4)."""
    scheme, _, rest = api_base.partition("://")
    return ("wss" if scheme == "https" else "ws") + "://" + rest + "/" + path.lstrip("/")


class LogSocket:
    """One open log socket: `send` sends a batch and returns the API's acknowledgement."""

    def __init__(self, connection: Any, closed_errors: tuple[type[BaseException], ...]) -> None:
        self._connection = connection
        self._closed_errors = closed_errors

    @classmethod
    def open(cls, url: str, token: str) -> LogSocket:
        """Open the socket with the build token in the handshake's Authorization header."""
        client = _client()
        from websockets.exceptions import WebSocketException

        try:
            connection = client.connect(
                url,
                additional_headers={"Authorization": f"Bearer {token}"},
                user_agent_header="sd-launcher",
                # The batches are compressed already; the API is reached directly, as by HTTP.
                compression=None,
                proxy=None,
                open_timeout=OPEN_TIMEOUT,
                close_timeout=1,
                # The connection outlives this call: `close` ends it.
                legacy=True,
            )
        except (WebSocketException, OSError, TimeoutError) as exc:
            raise SocketError(f"could not open {url}: {exc}") from exc
        return cls(connection, (WebSocketException, OSError, TimeoutError))

    def send(self, step: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one batch of `step`; its answer, an ApiError for a refused batch (as the log
        POST's 4xx), SocketError when the socket failed (then it is closed)."""
        frame = json.dumps({"step": step, **payload})
        if len(frame) > MAX_FRAME_BYTES:
            raise FrameTooBig(f"{len(frame)} bytes")
        try:
            self._connection.send(frame)
            text = self._connection.recv(timeout=ACK_TIMEOUT)
        except self._closed_errors as exc:
            self.close()
            raise SocketError(_why(exc)) from exc
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or (answer.get("step"), answer.get("seq")) != (
            step,
            payload.get("seq"),
        ):
            self.close()
            raise SocketError(f"the API answered something else than batch {payload.get('seq')}")
        if answer.get("type") == "error":
            status = answer.get("status")
            kind = ConflictError if status == 409 else ApiError
            raise kind(
                f"the log socket refused batch {payload.get('seq')} of {step} ({status})",
                status=status if isinstance(status, int) else 400,
                body=json.dumps({"message": answer.get("message")}),
            )
        return answer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._connection.close()


def _why(exc: BaseException) -> str:
    received = getattr(exc, "rcvd", None)
    if received is not None:
        return f"the API closed it ({received.code}: {received.reason or 'no reason'})"
    if isinstance(exc, TimeoutError):
        return f"no answer within {ACK_TIMEOUT:.0f} s"
    return str(exc) or type(exc).__name__


class LogTransport:
    """The batcher's sender: by HTTP, or over the log socket while a page watches.

    `send` is called from the batcher's thread only, one batch at a time; the socket opens in a
    thread of its own, so batches go on by HTTP meanwhile.
    """

    def __init__(
        self,
        http: Sender,
        *,
        url: str | None,
        token: str,
        opener: Opener = LogSocket.open,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._url = url
        self._token = token
        self._opener = opener
        self._clock = clock
        self._lock = threading.Lock()
        self._socket: Socket | None = None
        self._opening = False
        self._closed = False
        self._failures = 0
        self._reopen_at = 0.0
        self._last_live = 0.0
        self._opened_at = 0.0
        # Per step: batches sent by HTTP and over the socket, told on stderr at the end.
        self.counts: dict[str, list[int]] = {}
        self.sockets_opened = 0

    def streaming(self) -> bool:
        """Whether the socket is open (batches may then go sooner)."""
        return self._socket is not None

    def send(self, step: str, payload: dict[str, Any]) -> Any:
        """Send a batch over the socket when it is open, else (or when it fails) by HTTP."""
        socket = self._socket
        if socket is not None:
            try:
                answer = socket.send(step, payload)
            except FrameTooBig:
                pass
            except SocketError as exc:
                self._lost(socket, f"the log socket failed ({exc}): sending logs by HTTP")
            else:
                self._count(step, 1)
                self._note_watchers(socket, answer)
                return answer
        answer = self._http(step, payload)
        self._count(step, 0)
        if isinstance(answer, dict) and answer.get("live") is True:
            self._open_soon()
        return answer

    def close(self) -> None:
        """Close the socket, and say on stderr how the log went."""
        with self._lock:
            self._closed = True
            socket, self._socket = self._socket, None
        if socket is not None:
            socket.close()
        if any(sent[1] for sent in self.counts.values()) or self.sockets_opened:
            told = "; ".join(
                f"{step} {http} by HTTP and {over} on the socket"
                for step, (http, over) in self.counts.items()
            )
            sys.stderr.write(
                f"launcher: log batches sent: {told} ({self.sockets_opened} socket(s) opened)\n"
            )

    def _count(self, step: str, index: int) -> None:
        self.counts.setdefault(step, [0, 0])[index] += 1

    def _note_watchers(self, socket: Socket, answer: dict[str, Any]) -> None:
        now = self._clock()
        if answer.get("live") is True:
            self._last_live = now
        elif now - self._last_live > UNWATCHED_LINGER:
            with self._lock:
                if self._socket is socket:
                    self._socket = None
            socket.close()

    def _lost(self, socket: Socket, message: str) -> None:
        with self._lock:
            if self._socket is socket:
                self._socket = None
        socket.close()
        self._failed(message, lived=self._clock() - self._opened_at)

    def _failed(self, message: str, *, lived: float = 0.0) -> None:
        # A socket that worked for a while starts the back-off again.
        self._failures = 1 if lived > MAX_REOPEN else self._failures + 1
        pause = min(MAX_REOPEN, FIRST_REOPEN * 2 ** (self._failures - 1))
        self._reopen_at = self._clock() + pause
        sys.stderr.write(f"launcher: {message}\n")

    def _open_soon(self) -> None:
        with self._lock:
            if (
                self._url is None
                or self._closed
                or self._opening
                or self._socket is not None
                or self._clock() < self._reopen_at
            ):
                return
            self._opening = True
        threading.Thread(target=self._open, name="sd-log-socket", daemon=True).start()

    def _open(self) -> None:
        assert self._url is not None
        try:
            socket = self._opener(self._url, self._token)
        except SocketUnavailable as exc:
            self._url = None  # never again in this build
            sys.stderr.write(f"launcher: {exc}: sending logs by HTTP\n")
        except SocketError as exc:
            self._failed(f"{exc}: sending logs by HTTP")
        else:
            with self._lock:
                kept = not self._closed
                if kept:
                    self._socket = socket
                    self._opened_at = self._last_live = self._clock()
                    self.sockets_opened += 1
            if not kept:
                socket.close()
        finally:
            with self._lock:
                self._opening = False
