"""The launcher's log transport: HTTP until a page watches, then one WebSocket, and HTTP again
(with the same batch, at once) whenever the socket fails.

The API's log socket is played by a small `websockets` server in a thread that records what
it gets and answers as each test says; the HTTP side is a function that records its batches.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from executors.launcher.api import ConflictError
from executors.launcher.livesocket import (
    MAX_FRAME_BYTES,
    UNWATCHED_LINGER,
    LogSocket,
    LogTransport,
    socket_url,
)

BASE_DIR = Path(__file__).resolve().parents[2]
KILL = "kill"
# Answer: the acknowledgement (live or not), an error, or KILL (drop the connection unanswered).
Answer = Callable[[dict[str, Any]], Any]


def stored(live: bool = True) -> Answer:
    return lambda frame: {
        "type": "stored",
        "step": frame["step"],
        "seq": frame["seq"],
        "stored": True,
        "live": live,
    }


class FakeLogSocket:
    """The API's log socket: records handshakes and frames, answers with `self.answer`."""

    def __init__(self) -> None:
        self.answer: Answer = stored()
        self.frames: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        self.refuse: tuple[int, str] | None = None
        self._server: Server = serve(self._handle, "127.0.0.1", 0, compression=None)
        self.port = self._server.socket.getsockname()[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v4/builds/7/logs/socket"

    def close(self) -> None:
        self._server.shutdown()

    def _handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        self.authorizations.append(connection.request.headers.get("Authorization"))
        if self.refuse is not None:
            connection.close(*self.refuse)
            return
        try:
            for message in connection:
                frame = json.loads(message)
                self.frames.append(frame)
                answer = self.answer(frame)
                if answer == KILL:
                    # Gone without a word, as when a proxy or the network drops the connection.
                    connection.socket.shutdown(socket.SHUT_RDWR)
                    return
                connection.send(json.dumps(answer))
        except ConnectionClosed:
            return


@pytest.fixture
def api_socket() -> Iterator[FakeLogSocket]:
    server = FakeLogSocket()
    yield server
    server.close()


class HttpSide:
    """The log POST as the transport meets it: records batches, says whether a page watches."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, dict[str, Any]]] = []
        self.live = True

    def __call__(self, step: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.batches.append((step, payload))
        return {"stored": True, "live": self.live}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def batch(seq: int, text: str = "line") -> dict[str, Any]:
    return {"seq": seq, "firstLine": seq, "count": 1, "data": text, "times": [[1, 1]]}


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def streaming_transport(
    api_socket: FakeLogSocket, http: HttpSide, clock: Clock | None = None
) -> LogTransport:
    """A transport whose first batch went by HTTP, answered `live`: its socket is open."""
    transport = LogTransport(
        http, url=api_socket.url, token="build-token", clock=clock or time.monotonic
    )
    transport.send("s", batch(0))
    wait_for(transport.streaming)
    return transport


def test_the_socket_url_follows_the_api_url() -> None:
    assert socket_url("http://h:8000/v4", "/builds/7/logs/socket") == (
        "ws://h:8000/v4/builds/7/logs/socket"
    )
    assert socket_url("https://sd.example/x/v4", "/builds/7/logs/socket") == (
        "wss://sd.example/x/v4/builds/7/logs/socket"
    )


def test_batches_go_by_http_until_a_page_watches_then_over_one_socket(
    api_socket: FakeLogSocket,
) -> None:
    http = HttpSide()
    http.live = False
    transport = LogTransport(http, url=api_socket.url, token="build-token")
    assert transport.send("s", batch(0)) == {"stored": True, "live": False}
    time.sleep(0.05)
    assert not transport.streaming() and api_socket.authorizations == []

    http.live = True
    transport.send("s", batch(1))
    wait_for(transport.streaming)
    answer = transport.send("s", batch(2))
    transport.send("t", batch(0))

    assert answer == {"type": "stored", "step": "s", "seq": 2, "stored": True, "live": True}
    assert [(step, b["seq"]) for step, b in http.batches] == [("s", 0), ("s", 1)]
    assert api_socket.frames == [{"step": "s", **batch(2)}, {"step": "t", **batch(0)}]
    # One socket, opened with the build token in its handshake (never in its address).
    assert api_socket.authorizations == ["Bearer build-token"]
    assert transport.counts == {"s": [2, 1], "t": [0, 1]}
    transport.close()
    assert not transport.streaming()


def test_a_socket_dropped_mid_frame_resends_that_batch_by_http_at_once(
    api_socket: FakeLogSocket, capsys: pytest.CaptureFixture[str]
) -> None:
    http, clock = HttpSide(), Clock()
    transport = streaming_transport(api_socket, http, clock)
    api_socket.answer = lambda frame: KILL if frame["seq"] == 2 else stored()(frame)
    assert transport.send("s", batch(1))["type"] == "stored"

    assert transport.send("s", batch(2, "cut")) == {"stored": True, "live": True}
    # The batch the socket lost went by HTTP as it was: same seq, same lines.
    assert http.batches[-1] == ("s", batch(2, "cut"))
    assert not transport.streaming()
    assert "the log socket failed" in capsys.readouterr().err

    # Not again at once: the next batch goes by HTTP, and the socket opens after a back-off.
    transport.send("s", batch(3))
    time.sleep(0.05)
    assert not transport.streaming() and len(api_socket.authorizations) == 1
    clock.now += 5
    transport.send("s", batch(4))
    wait_for(transport.streaming)
    transport.send("s", batch(5))
    assert [(b["seq"]) for _, b in http.batches] == [0, 2, 3, 4]
    assert [f["seq"] for f in api_socket.frames] == [1, 2, 5]
    transport.close()


def test_a_refused_batch_is_a_4xx_as_by_http_and_the_socket_stays(
    api_socket: FakeLogSocket,
) -> None:
    http = HttpSide()
    transport = streaming_transport(api_socket, http)
    api_socket.answer = lambda frame: {
        "type": "error",
        "step": frame["step"],
        "seq": frame["seq"],
        "status": 409,
        "message": "Step s expects batch 1 starting at line 1",
    }
    with pytest.raises(ConflictError) as refused:
        transport.send("s", batch(9))
    assert refused.value.permanent and "expects batch 1" in refused.value.body
    assert transport.streaming() and len(http.batches) == 1
    transport.close()


def test_the_socket_closes_once_no_page_has_watched_for_a_while(
    api_socket: FakeLogSocket,
) -> None:
    http, clock = HttpSide(), Clock()
    transport = streaming_transport(api_socket, http, clock)
    api_socket.answer = stored(live=False)
    transport.send("s", batch(1))
    assert transport.streaming()
    clock.now += UNWATCHED_LINGER + 1
    transport.send("s", batch(2))
    assert not transport.streaming()
    http.live = False
    transport.send("s", batch(3))
    assert [b["seq"] for _, b in http.batches] == [0, 3]
    transport.close()


def test_a_refused_socket_says_why_and_logs_go_by_http(
    api_socket: FakeLogSocket, capsys: pytest.CaptureFixture[str]
) -> None:
    http = HttpSide()
    api_socket.refuse = (4403, "A build token can only act on its own build.")
    transport = streaming_transport(api_socket, http)
    assert transport.send("s", batch(1)) == {"stored": True, "live": True}
    assert http.batches[-1] == ("s", batch(1))
    assert "4403: A build token can only act on its own build." in capsys.readouterr().err
    transport.close()


def test_a_batch_too_big_for_a_frame_goes_by_http_and_keeps_the_socket(
    api_socket: FakeLogSocket,
) -> None:
    http = HttpSide()
    transport = streaming_transport(api_socket, http)
    transport.send("s", batch(1, "x" * MAX_FRAME_BYTES))
    assert http.batches[-1][1]["seq"] == 1 and api_socket.frames == []
    assert transport.streaming()
    transport.send("s", batch(2))
    assert [f["seq"] for f in api_socket.frames] == [2]
    transport.close()


def test_no_socket_is_tried_without_an_address_in_the_launch_spec() -> None:
    http = HttpSide()
    transport = LogTransport(http, url=None, token="build-token")
    for seq in range(3):
        transport.send("s", batch(seq))
    time.sleep(0.05)
    assert not transport.streaming() and len(http.batches) == 3
    transport.close()


def test_the_socket_opens_in_a_launcher_started_without_site_packages(
    api_socket: FakeLogSocket,
) -> None:
    # The local executor starts the launcher with `python -S`: the client is found anyway.
    program = (
        "import json, sys\n"
        "from executors.launcher.livesocket import LogSocket\n"
        "assert 'websockets' not in sys.modules\n"
        f"socket = LogSocket.open({api_socket.url!r}, 'build-token')\n"
        "print(json.dumps(socket.send('s', {'seq': 0})))\n"
        "socket.close()\n"
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(BASE_DIR)}
    done = subprocess.run(
        [sys.executable, "-S", "-c", program],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stored"] is True
    assert isinstance(LogSocket, type)
