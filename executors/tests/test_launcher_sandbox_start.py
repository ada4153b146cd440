"""The launcher starts its sandbox while the launch spec is on its way, and ends it when there
is no build to run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import BASE_DIR
from executors.launcher.sandbox import probe

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(probe() is not None, reason=f"no sandbox here: {probe()}"),
]

BUILD_ID = 7


def _sandboxes_of(workspace: Path) -> list[int]:
    """The bwrap processes whose command line names `workspace`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"bwrap") and str(workspace).encode() in b"\0".join(argv):
            found.append(int(entry.name))
    return found


@dataclass
class StoppedBuildApi:
    """An API whose build was stopped before its launcher asked for it: it answers the launch
    with 409 and the build with ABORTED, and notes whether a sandbox of the workspace ran
    while the launch request waited for its answer."""

    workspace: Path
    url: str = ""
    seen: list[str] = field(default_factory=list)
    sandbox_while_asked: bool = False


@pytest.fixture
def api(tmp_path: Path) -> Iterator[StoppedBuildApi]:
    fake = StoppedBuildApi(workspace=tmp_path / "workspace")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            fake.seen.append(f"POST {self.path}")
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not fake.sandbox_while_asked:
                fake.sandbox_while_asked = bool(_sandboxes_of(fake.workspace))
                time.sleep(0.01)
            self._answer(409, {"statusCode": 409, "error": "Conflict", "message": "stopped"})

        def do_GET(self) -> None:
            fake.seen.append(f"GET {self.path}")
            self._answer(200, {"id": BUILD_ID, "status": "ABORTED"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


def test_the_sandbox_starts_while_the_spec_is_asked_for_and_ends_when_the_build_was_stopped(
    api: StoppedBuildApi,
) -> None:
    api.workspace.mkdir()
    started = time.monotonic()
    launcher = subprocess.run(
        [
            sys.executable,
            "-m",
            "executors.launcher",
            "--api-url",
            f"{api.url}/v4",
            "--build-id",
            str(BUILD_ID),
            "--workspace",
            str(api.workspace),
            "--sandbox",
        ],
        cwd=BASE_DIR,
        env={**os.environ, "SD_LAUNCHER_TOKEN": "build-token"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert launcher.returncode == 0, launcher.stderr
    assert api.seen[:2] == [f"POST /v4/builds/{BUILD_ID}/launch", f"GET /v4/builds/{BUILD_ID}"]
    assert api.sandbox_while_asked
    # The unused sandbox is killed, not left to a grace time.
    assert time.monotonic() - started < 20
    assert _sandboxes_of(api.workspace) == []
