"""The launcher's API client: reports are resent through an outage until the token expires."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest

from executors.launcher.api import ApiClient, ApiError, token_lifetime


class _Api:
    """A fake API whose port is taken from the start: bound but not listening, every
    connection to it is refused (the API is down) and no other process can take the port;
    `up()` starts answering every PUT with `status`."""

    def __init__(self, status: int) -> None:
        self.seen: list[str] = []
        seen = self.seen

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

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.server_bind()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextmanager
    def up(self) -> Iterator[None]:
        self.server.server_activate()
        thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            self.server.shutdown()

    def close(self) -> None:
        self.server.server_close()


@pytest.fixture
def api_ok() -> Iterator[_Api]:
    api = _Api(200)
    yield api
    api.close()


@pytest.fixture
def api_forbidden() -> Iterator[_Api]:
    api = _Api(403)
    yield api
    api.close()


def test_the_tokens_lifetime_is_read_from_the_token_and_junk_gives_none() -> None:
    token = jwt.encode({"iat": 1_000, "exp": 7_000}, "k" * 32, algorithm="HS256")
    assert token_lifetime(token) == 6_000
    assert token_lifetime("not-a-jwt") is None
    assert token_lifetime("a.bm90IGpzb24.c") is None
    # Counted from now on this machine, whatever instant the server's clock wrote.
    client = ApiClient("http://127.0.0.1:9", token)
    assert 5_990 < client.seconds_left() <= 6_000


@pytest.mark.slow
def test_a_report_sent_while_the_api_is_down_lands_when_it_comes_back(api_ok: _Api) -> None:
    retries: list[ApiError] = []
    client = ApiClient(api_ok.url, "t", give_up_at=time.time() + 60)
    result: dict[str, Any] = {}

    def send() -> None:
        result["answer"] = client.deliver(
            "PUT", "/builds/1", {"status": "SUCCESS"}, on_retry=retries.append
        )

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(2.0)  # refused for two seconds: four tries at least
    with api_ok.up():
        sender.join(timeout=30)
    assert result["answer"] == {"ok": True}
    assert api_ok.seen == [json.dumps({"status": "SUCCESS"})]
    assert len(retries) >= 2


def test_a_report_the_api_refuses_is_not_resent(api_forbidden: _Api) -> None:
    client = ApiClient(api_forbidden.url, "t", give_up_at=time.time() + 60)
    with api_forbidden.up(), pytest.raises(ApiError) as refused:
        client.deliver("PUT", "/builds/1", {"status": "SUCCESS"})
    assert refused.value.status == 403 and len(api_forbidden.seen) == 1


def test_resending_stops_when_the_token_would_have_expired(api_ok: _Api) -> None:
    client = ApiClient(api_ok.url, "t", give_up_at=time.time() + 1.0)
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
