"""A real build watched live: its launcher streams the log over the log socket, and a socket
cut in the middle of the step loses no line and repeats none.

daphne and a worker as `make run` starts them, the real launcher (reaching the API through a
proxy the test can cut), and a WebSocket client standing in for the build page: it signs in
with a session, subscribes to the step and keeps lines as the page does.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client
from websockets.sync.client import connect
from websockets.typing import Origin

from builds.logs import read_page
from builds.models import Build, BuildStatus, LogBatch, Step
from conftest import GitRepo, database_url, wait_until
from executors.launcher.livesocket import LogSocket, SocketError
from executors.tests.outage_proxy import OutageProxy
from pipelines.services import Creator, create_pipeline, start_event
from tools.live_stack import LiveStack, free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LINES = 200
YAML = (
    "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n    steps:\n"
    f'      - count: sleep 2; i=1; while [ $i -le {LINES} ]; do echo "line $i"; '
    "i=$((i+1)); sleep 0.02; done\n"
)


@pytest.fixture
def proxied(tmp_path: Path, settings: Any) -> Iterator[tuple[LiveStack, OutageProxy]]:
    """daphne and a worker on the test database; builds reach the API through a proxy."""
    port = free_port()
    proxy = OutageProxy(port)
    stack = LiveStack.start(
        database_url=database_url(),
        data_dir=tmp_path / "sd-data",
        secret_key=django_settings.SECRET_KEY,
        port=port,
        extra_env={
            "SD_API_URL": proxy.url,
            "SD_BUILD_LEASE_SECONDS": "30",
            "SD_LOCAL_REPO_ROOTS": ",".join(settings.SD_LOCAL_REPO_ROOTS),
        },
    )
    settings.SD_API_URL = proxy.url
    yield stack, proxy
    stack.stop()
    proxy.close()


class Watcher:
    """The build page's WebSocket: subscribes to a step, keeps its lines as the page does
    (one it has is dropped; one after a hole is a hole)."""

    def __init__(self, stack: LiveStack, build: Build, cookie: str, step: str) -> None:
        self.lines: list[str] = []
        self.holes: list[int] = []
        self.step = step
        self._socket = connect(
            f"ws://127.0.0.1:{stack.port}/ws/builds/{build.pk}/",
            additional_headers={"Cookie": cookie},
            origin=Origin(stack.url),
            legacy=True,
        )
        self._socket.send(json.dumps({"type": "subscribe", "step": step, "from": 0}))
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for message in self._socket:
            data = json.loads(message)
            if data.get("type") != "lines" or data.get("step") != self.step:
                continue
            for line in data["lines"]:
                if line["n"] > len(self.lines):
                    self.holes.append(line["n"])
                elif line["n"] == len(self.lines):
                    self.lines.append(line["m"])

    def close(self) -> None:
        self._socket.close()
        self._thread.join(5)


def _session_cookie() -> str:
    user = User.objects.create_user(username="watcher", password="pw-123456")
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def _launcher_log(stack: LiveStack, build: Build) -> str:
    # Beside the build's workspace, which the launcher may still be removing: not a walk.
    found = stack.data_dir / "workspaces" / f"build-{build.pk}.launcher.log"
    assert found.is_file(), "no launcher log"
    return found.read_text()


@pytest.mark.parametrize("cut", [False, True], ids=["socket", "socket-cut-mid-step"])
def test_a_watched_build_streams_every_line_in_order_over_the_log_socket(
    proxied: tuple[LiveStack, OutageProxy], make_repo: Any, cut: bool
) -> None:
    stack, proxy = proxied
    repo: GitRepo = make_repo({"screwdriver.yaml": YAML})
    admin = User.objects.create_superuser(username="admin")
    cookie = _session_cookie()
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=admin)
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("A", "admin"))
    build = wait_until(lambda: Build.objects.filter(event=event).first(), what="the build")
    watcher = Watcher(stack, build, cookie, "count")
    try:
        if cut:
            wait_until(lambda: len(watcher.lines) >= 50 or None, timeout=60, what="50 lines")
            # Every connection from the launcher goes, its log socket with them; new ones work.
            proxy.down()
            proxy.up()
        wait_until(
            lambda: Build.objects.filter(pk=build.pk, status=BuildStatus.SUCCESS).first(),
            timeout=90,
            what="the build's success",
        )
        wait_until(lambda: len(watcher.lines) >= LINES or None, timeout=10, what="every line")
    finally:
        watcher.close()

    expected = [f"line {n}" for n in range(1, LINES + 1)]
    assert watcher.lines == expected and watcher.holes == []
    step = Step.objects.get(build=build, name="count")
    assert [line["m"] for line in read_page(step=step, pages=100).lines] == expected
    batches = list(LogBatch.objects.filter(step=step).order_by("seq"))
    assert [b.seq for b in batches] == list(range(len(batches)))
    assert sum(b.line_count for b in batches) == LINES

    told = _launcher_log(stack, build)
    summary = next(line for line in told.splitlines() if "log batches sent" in line)
    counted = re.search(r"count (\d+) by HTTP and (\d+) on the socket", summary)
    assert counted is not None, summary
    http, over_socket = int(counted[1]), int(counted[2])
    # Before the socket opens, and for a back-off after the cut, batches go by HTTP.
    assert over_socket > (http if cut else 5 * http), summary
    if cut:
        assert "the log socket failed" in told
        assert "(2 socket(s) opened)" in summary or "(3 socket(s) opened)" in summary, summary
    else:
        assert "(1 socket(s) opened)" in summary, summary


def test_daphne_refuses_a_socket_with_the_reason(
    proxied: tuple[LiveStack, OutageProxy],
) -> None:
    stack, _ = proxied
    socket = LogSocket.open(f"ws://127.0.0.1:{stack.port}/v4/builds/1/logs/socket", "a.b.c")
    with pytest.raises(SocketError, match=r"4401: The token is not valid"):
        socket.send("count", {"seq": 0})
