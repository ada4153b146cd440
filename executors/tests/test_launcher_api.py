"""The launcher's API client: reports are resent through an outage until the token expires."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest

from executors.launcher.api import ApiClient, ApiError, token_lifetime


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _api(port: int, status: int, seen: list[str]) -> Iterator[None]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen.append(self.rfile.read(length).decode())
            body = json.dumps({"ok": status < 400}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def test_the_tokens_lifetime_is_read_from_the_token_and_junk_gives_none() -> None:
    token = jwt.encode({"iat": 1_000, "exp": 7_000}, "k" * 32, algorithm="HS256")
    assert token_lifetime(token) == 6_000
    assert token_lifetime("not-a-jwt") is None
    assert token_lifetime("a.bm90IGpzb24.c") is None
    # Counted from now on this machine, whatever instant the server's clock wrote.
    client = ApiClient("http://127.0.0.1:9", token)
    assert 5_990 < client.seconds_left() <= 6_000


@pytest.mark.slow
def test_a_report_sent_while_the_api_is_down_lands_when_it_comes_back() -> None:
    port = _free_port()
    seen: list[str] = []
    retries: list[ApiError] = []
    client = ApiClient(f"http://127.0.0.1:{port}", "t", give_up_at=time.time() + 60)
    result: dict[str, Any] = {}

    def send() -> None:
        result["answer"] = client.deliver(
            "PUT", "/builds/1", {"status": "SUCCESS"}, on_retry=retries.append
        )

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(2.0)  # refused for two seconds: four tries at least
    with _api(port, 200, seen):
        sender.join(timeout=30)
    assert result["answer"] == {"ok": True}
    assert seen == [json.dumps({"status": "SUCCESS"})]
    assert len(retries) >= 2


def test_a_report_the_api_refuses_is_not_resent() -> None:
    port = _free_port()
    seen: list[str] = []
    client = ApiClient(f"http://127.0.0.1:{port}", "t", give_up_at=time.time() + 60)
    with _api(port, 403, seen), pytest.raises(ApiError) as refused:
        client.deliver("PUT", "/builds/1", {"status": "SUCCESS"})
    assert refused.value.status == 403 and len(seen) == 1


def test_resending_stops_when_the_token_would_have_expired() -> None:
    client = ApiClient(f"http://127.0.0.1:{_free_port()}", "t", give_up_at=time.time() + 1.0)
    started = time.monotonic()
    with pytest.raises(ApiError):
        client.deliver("PUT", "/builds/1", {"status": "SUCCESS"})
    assert time.monotonic() - started < 5


def test_a_file_upload_to_an_api_that_is_down_is_resent_and_then_gives_up(tmp_path: Any) -> None:
    # Nothing listens on port 9: every try is refused before a byte is sent.
    client = ApiClient("http://127.0.0.1:9", "t", give_up_at=time.time() + 60)
    source = tmp_path / "a.txt"
    source.write_bytes(b"abc")
    retried: list[ApiError] = []
    fd = os.open(source, os.O_RDONLY)
    try:
        with pytest.raises(ApiError, match=r"PUT .* failed"):
            client.deliver_file(
                "/builds/1/artifacts/a.txt", fd, 3, within=0.8, on_retry=retried.append
            )
    finally:
        os.close(fd)
    assert retried, "a refused connection is worth a resend"
