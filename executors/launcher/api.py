"""A tiny JSON client for the Screwdriver API, authenticated with the build token."""

from __future__ import annotations

import base64
import http.client
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

# Resends of a report that did not land wait this long, doubling up to MAX_BACKOFF.
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 10.0
# An upload's socket waits this long for the server, which answers once the file is stored
# (a zip once it is expanded).
UPLOAD_TIMEOUT = 600.0
UPLOAD_BLOCK_BYTES = 256 * 1024


class ApiError(Exception):
    """The API answered with an error status, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    @property
    def permanent(self) -> bool:
        """A 4xx will not change on a resend; a 5xx or a connection error may."""
        return self.status is not None and 400 <= self.status < 500


class ConflictError(ApiError):
    """409: the build is no longer in a state that allows the call."""


class BodyChanged(Exception):
    """A file being uploaded ended before the size it was sent with: it changed meanwhile."""


class _Exactly:
    """The first `length` bytes of an open file, from its start, as an HTTP body.

    http.client reads it in blocks; a file that turns out shorter stops the upload (the
    server then sees a body shorter than its Content-Length and stores nothing).
    """

    def __init__(self, fd: int, length: int) -> None:
        self.fd = fd
        self.left = length
        os.lseek(fd, 0, os.SEEK_SET)

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        want = self.left if size < 0 else min(size, self.left)
        data = os.read(self.fd, want)
        if not data:
            raise BodyChanged(f"the file ended {self.left} bytes before its size")
        self.left -= len(data)
        return data


def token_lifetime(token: str) -> float | None:
    """How long the build token is accepted for, in seconds (its `exp` minus its `iat`).

    Read without checking the signature: the launcher only uses it to know how long to keep
    resending its reports; the server checks the token on every request. A length rather than
    the instant itself, so a machine whose clock is off by minutes still gets the whole window.
    """
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"]) - float(claims["iat"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None


def backoff_delays(first: float = FIRST_BACKOFF, cap: float = MAX_BACKOFF) -> Callable[[], float]:
    """A function giving the next wait of a doubling back-off: first, 2 x first, ... cap."""
    delay = first / 2

    def following() -> float:
        nonlocal delay
        delay = min(cap, delay * 2)
        return delay

    return following


def base_url(api_url: str) -> str:
    """The API root ending in `/v4`, whether or not `api_url` already had it."""
    root = api_url.rstrip("/")
    return root if root.endswith("/v4") else root + "/v4"


class ApiClient:
    """Sends JSON requests; retries connection errors and 5xx with backoff."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        give_up_at: float | None = None,
    ) -> None:
        self.base = base_url(api_url)
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        # Until when `deliver` keeps resending (seconds since the epoch): the token's expiry,
        # counted on this machine's clock from now (the token was issued just before start).
        lifetime = token_lifetime(token)
        if give_up_at is None and lifetime is not None:
            give_up_at = time.time() + lifetime
        self.give_up_at = give_up_at
        self._local = threading.local()

    def seconds_left(self) -> float:
        """How long reports may still be resent; an hour when the token says nothing."""
        if self.give_up_at is None:
            return 3600.0
        return max(0.0, self.give_up_at - time.time())

    def deliver(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        within: float | None = None,
        on_retry: Callable[[ApiError], None] | None = None,
    ) -> Any:
        """Send a report until the API takes it: an outage or a restart of the API only
        delays it. A 4xx is final; so is anything still failing when the token expires (or
        after `within` seconds)."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        patience = self.seconds_left() if within is None else min(within, self.seconds_left())
        deadline = time.monotonic() + patience
        wait = backoff_delays()
        while True:
            try:
                return self._once(method, path, data, self.timeout)
            except ApiError as exc:
                pause = wait()
                if exc.permanent or time.monotonic() + pause > deadline:
                    raise
                if on_retry is not None:
                    on_retry(exc)
                time.sleep(pause)

    def deliver_file(
        self,
        path: str,
        fd: int,
        length: int,
        *,
        content_type: str = "application/octet-stream",
        within: float | None = None,
        on_retry: Callable[[ApiError], None] | None = None,
    ) -> Any:
        """PUT the first `length` bytes of the open file `fd` to `path`, streamed from disk,
        resent as `deliver` resends a report (from the file's start each time).

        BodyChanged when the file ends early: a resend would not help.
        """
        patience = self.seconds_left() if within is None else min(within, self.seconds_left())
        deadline = time.monotonic() + patience
        wait = backoff_delays()
        while True:
            try:
                return self._upload_once(path, fd, length, content_type)
            except ApiError as exc:
                pause = wait()
                if exc.permanent or time.monotonic() + pause > deadline:
                    raise
                if on_retry is not None:
                    on_retry(exc)
                time.sleep(pause)

    def _upload_once(self, path: str, fd: int, length: int, content_type: str) -> Any:
        # A connection of its own: big blocks, a long wait for the answer, closed after.
        url = self.base + "/" + path.lstrip("/")
        parts = urllib.parse.urlsplit(url)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(
            parts.hostname or "127.0.0.1",
            parts.port,
            timeout=max(self.timeout, UPLOAD_TIMEOUT),
            blocksize=UPLOAD_BLOCK_BYTES,
        )
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
            "Content-Type": content_type,
            "Content-Length": str(length),
        }
        try:
            try:
                conn.request("PUT", parts.path, body=_Exactly(fd, length), headers=headers)  # type: ignore[arg-type]
            except OSError as exc:
                if conn.sock is None:
                    # Never connected (the API is down or restarting): resent like any report.
                    raise ApiError(f"PUT {url} failed: {exc}") from exc
                # A server may refuse before it has read the body (a 413) and close; its
                # answer can still be waiting to be read.
                failed: Exception | None = exc
            else:
                failed = None
            try:
                response = conn.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise ApiError(f"PUT {url} failed: {failed or exc}") from exc
        finally:
            conn.close()
        return self._answer("PUT", url, response.status, raw)

    def get(self, path: str, *, timeout: float | None = None) -> Any:
        """GET `path` (relative to /v4)."""
        return self.request("GET", path, timeout=timeout)

    def put(self, path: str, body: Any, *, timeout: float | None = None) -> Any:
        """PUT JSON to `path`."""
        return self.request("PUT", path, body, timeout=timeout)

    def post(self, path: str, body: Any, *, timeout: float | None = None) -> Any:
        """POST JSON to `path`."""
        return self.request("POST", path, body, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> Any:
        """Send one request, retrying what a retry can fix; return the decoded JSON or None."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        attempts = 1 + (self.retries if retries is None else retries)
        for attempt in range(attempts):
            try:
                return self._once(method, path, data, timeout or self.timeout)
            except ApiError as exc:
                if exc.permanent or attempt == attempts - 1:
                    raise
            time.sleep(self.backoff * (2**attempt))
        raise AssertionError("unreachable")

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        # One keep-alive connection per thread (reports, logs and heartbeat each have one):
        # a new TCP connection per request would cost more than most requests themselves.
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            parts = urllib.parse.urlsplit(self.base)
            cls = (
                http.client.HTTPSConnection
                if parts.scheme == "https"
                else http.client.HTTPConnection
            )
            conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
            self._local.conn = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _once(self, method: str, path: str, data: bytes | None, timeout: float) -> Any:
        url = self.base + "/" + path.lstrip("/")
        target = urllib.parse.urlsplit(url).path
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for fresh in (False, True):
            conn = self._connection(timeout)
            try:
                conn.request(method, target, body=data, headers=headers)
                response = conn.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                # The server closed an idle keep-alive connection: one retry on a new one.
                self._drop_connection()
                if fresh:
                    raise ApiError(f"{method} {url} failed: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                raise ApiError(f"{method} {url} failed: {exc}") from exc
        if response.getheader("Connection", "").lower() == "close":
            self._drop_connection()
        return self._answer(method, url, response.status, raw)

    @staticmethod
    def _answer(method: str, url: str, status: int, raw: bytes) -> Any:
        if status >= 400:
            text = raw.decode("utf-8", "replace")
            kind = ConflictError if status == 409 else ApiError
            raise kind(f"{method} {url} answered {status}", status=status, body=text)
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(f"{method} {url} answered with something other than JSON") from exc
