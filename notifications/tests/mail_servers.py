"""A real SMTP server (aiosmtpd's) and a stand-in for Slack's Web API, each served from a
thread on 127.0.0.1, for the notices the tests send."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Received:
    """One email as the SMTP server received it."""

    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, kind: str) -> str:
        found = self.message.get_body(preferencelist=(kind.split("/")[1],))
        return found.get_content() if found is not None else ""


@dataclass
class Inbox:
    """aiosmtpd's handler: keeps every email it is given."""

    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))  # type: ignore[arg-type]
        return "250 OK"


@contextmanager
def serve_smtp(port: int, inbox: Inbox) -> Iterator[Inbox]:
    """Run an SMTP server on 127.0.0.1:port until the block ends."""
    from aiosmtpd.controller import Controller

    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


@dataclass
class FakeSlack:
    """What the Slack stand-in was asked, and how it answers each channel."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    # channel -> chat.postMessage's answer; any other channel: {"ok": true}.
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def messages(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.calls)


def _slack_handler(state: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path != "/api/chat.postMessage":
                answer: dict[str, Any] = {"ok": False, "error": "unknown_method"}
            else:
                with state.lock:
                    state.calls.append({"authorization": self.headers["Authorization"], **body})
                answer = state.answers.get(body.get("channel"), {"ok": True, "ts": "1.0"})
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def serve_slack() -> Iterator[tuple[str, FakeSlack]]:
    """Run the Slack stand-in until the block ends: its API base URL and its state."""
    state = FakeSlack()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _slack_handler(state))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api", state
    finally:
        server.shutdown()
        server.server_close()
