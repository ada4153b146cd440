"""The local executor forks each build's launcher from a fork server that never holds a token."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import wait_until
from executors.base import BuildHandle, ExecutorError, LaunchRequest
from executors.launcher import forkserver
from executors.local import LocalExecutor
from executors.supervisor import launchers_of

pytestmark = pytest.mark.slow


@dataclass
class FakeApi:
    """Answers a launcher's first request (its launch spec) with 404 once `release` is set."""

    url: str = ""
    seen: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            fake.seen.append(f"{self.path} {self.headers.get('Authorization')}")
            fake.release.wait(30)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    yield fake
    fake.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def workspaces(settings: Any, tmp_path: Path) -> Path:
    settings.SD_WORKSPACES_DIR = tmp_path / "workspaces"
    return tmp_path / "workspaces"


def _request(build_id: int, api_url: str, token: str) -> LaunchRequest:
    return LaunchRequest(
        build_id=build_id,
        pipeline_id=1,
        job_name="main",
        image="",
        annotations={},
        timeout_seconds=60,
        api_url=api_url,
        token=token,
    )


def _fork_servers() -> list[int]:
    """The fork servers this test process started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        if b"executors.launcher.forkserver" in cmdline and ppid == os.getpid():
            found.append(int(entry.name))
    return found


def test_a_forked_launcher_gets_its_token_its_log_and_a_session_and_is_found_by_its_pid_file(
    api: FakeApi, workspaces: Path
) -> None:
    executor = LocalExecutor()
    workspace = executor.fresh_workspace(7)

    pid = executor.start_launcher(_request(7, api.url, "token-of-build-7"), workspace)

    wait_until(lambda: api.seen, timeout=20)
    assert api.seen == ["/v4/builds/7/launch Bearer token-of-build-7"]
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    # Forked, not started anew: it has the server's room for a command line, and shows a
    # launcher's, as `ps` would show one started on its own.
    assert len(raw) > forkserver.TITLE_ROOM
    shown = [arg for arg in raw.split(b"\0") if arg]
    assert shown[1:3] == [b"-m", b"executors.launcher"]
    assert shown[shown.index(b"--build-id") + 1] == b"7"
    assert b"token-of-build-7" not in raw
    assert os.getsid(pid) == pid
    handle = BuildHandle(build_id=7, state={"pid": pid})
    assert executor.is_alive(handle)
    assert launchers_of(workspaces) == {pid: 7}
    # The fork server passed the token on unread: it is in no environment of its own.
    (server,) = _fork_servers()
    assert b"token-of-build-7" not in Path(f"/proc/{server}/environ").read_bytes()
    # Another build's workspace does not own this launcher.
    assert not executor.is_alive(BuildHandle(build_id=8, state={"pid": pid}))

    api.release.set()
    wait_until(lambda: not executor.is_alive(handle), timeout=20)
    log = (workspaces / "build-7.launcher.log").read_text()
    assert "could not fetch what to run" in log
    executor.cleanup(handle)
    assert not forkserver.pid_file(workspace).exists()
    assert launchers_of(workspaces) == {}


def test_a_fork_server_that_died_is_replaced_for_the_next_build(
    api: FakeApi, workspaces: Path
) -> None:
    executor = LocalExecutor()
    api.release.set()
    first = executor.start_launcher(_request(1, api.url, "one"), executor.fresh_workspace(1))
    for server in _fork_servers():
        os.kill(server, signal.SIGKILL)
    wait_until(lambda: all(not forkserver.start_ticks(s) for s in _fork_servers()), timeout=10)

    second = executor.start_launcher(_request(2, api.url, "two"), executor.fresh_workspace(2))

    wait_until(lambda: len(api.seen) == 2, timeout=20)
    assert sorted(api.seen) == ["/v4/builds/1/launch Bearer one", "/v4/builds/2/launch Bearer two"]
    assert first != second


def test_a_launcher_that_cannot_start_fails_the_start_and_says_where_its_log_is(
    workspaces: Path,
) -> None:
    executor = LocalExecutor()
    workspace = executor.fresh_workspace(3)

    with pytest.raises(ExecutorError, match=r"build-3\.launcher\.log"):
        executor.start_launcher(
            _request(3, "http://127.0.0.1:9", "three"), workspace, ("--sandbox", "--agent", "x")
        )

    assert "--sandbox starts its own agent" in (workspaces / "build-3.launcher.log").read_text()
    assert not forkserver.pid_file(workspace).exists()


def test_the_fork_server_ends_when_its_worker_closes_the_socket() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.close()
    # `serve` returns at once: nothing will ever ask it for a launcher again.
    forkserver.serve(theirs)
    theirs.close()
