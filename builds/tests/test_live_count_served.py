"""The live log connections on /metrics with two real ASGI servers on one database, as
production runs several API processes: each counts the pages it holds, either answers the sum,
and a server that dies stops counting within three heartbeats."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from builds.models import Build, BuildStatus, LiveCount, Step
from conftest import database_url, wait_until
from pipelines.models import Event, Job, Pipeline
from tools.live_stack import LiveStack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TOKEN = "metrics-token-live-count"
HEARTBEAT = 1.0


@pytest.fixture
def servers(transactional_db: None, tmp_path: Path) -> Iterator[list[LiveStack]]:
    started: list[LiveStack] = []
    try:
        for name in ("api-1", "api-2"):
            started.append(
                LiveStack.start(
                    database_url=database_url(),
                    data_dir=tmp_path / name,
                    secret_key=django_settings.SECRET_KEY,
                    extra_env={
                        "SD_METRICS_TOKEN": TOKEN,
                        "SD_LIVE_HEARTBEAT_SECONDS": str(HEARTBEAT),
                    },
                    worker=False,
                )
            )
        yield started
    finally:
        for stack in started:
            stack.stop()


@pytest.fixture
def build() -> Build:
    pipeline = Pipeline.objects.create(
        name="a/b", scm_uri="local:/x.git:main", checkout_url="/x.git#main", scm_repo={}
    )
    job = Job.objects.create(pipeline=pipeline, name="main")
    event = Event.objects.create(pipeline=pipeline, sha="a" * 40, start_from="~commit")
    build = Build.objects.create(job=job, event=event, number=1, sha="a" * 40)
    Build.objects.filter(pk=build.pk).update(status=BuildStatus.RUNNING)
    Step.objects.create(build=build, position=0, name="hello")
    return build


@pytest.fixture
def cookie() -> str:
    client = Client()
    client.force_login(User.objects.create_user(username="alice", password="pw-123456"))
    return f"sessionid={client.cookies['sessionid'].value}"


def page(stack: LiveStack, build: Build, cookie: str) -> ClientConnection:
    """A build page's WebSocket to one server."""
    return connect(
        f"ws://127.0.0.1:{stack.port}/ws/builds/{build.pk}/",
        additional_headers={"Cookie": cookie},
        origin=Origin(stack.url),
        legacy=True,
    )


def counted(stack: LiveStack) -> float:
    request = urllib.request.Request(
        f"{stack.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "sd_live_log_connections":
            return float(family.samples[0].value)
    raise AssertionError("no sd_live_log_connections on /metrics")


def test_either_server_counts_every_servers_pages_and_a_dead_one_stops_counting(
    servers: list[LiveStack], build: Build, cookie: str
) -> None:
    first, second = servers
    pages = [page(first, build, cookie), page(first, build, cookie), page(second, build, cookie)]

    wait_until(lambda: counted(first) == 3, timeout=10, what="3 pages on the first server")
    wait_until(lambda: counted(second) == 3, timeout=10, what="3 pages on the second server")
    assert sorted(LiveCount.objects.values_list("connections", flat=True)) == [1, 2]

    pages[0].close()
    wait_until(lambda: counted(second) == 2, timeout=10, what="a closed page to be uncounted")

    # The second server dies with its page open: it never says so, its row goes stale.
    assert second.server is not None
    os.killpg(second.server.pid, signal.SIGKILL)
    second.server.wait(timeout=10)
    died = time.monotonic()
    wait_until(lambda: counted(first) == 1, timeout=15, what="the dead server's page to go")
    assert time.monotonic() - died <= 3 * HEARTBEAT + 5
    # The first server's page still counts heartbeats later: its row is kept fresh.
    time.sleep(4 * HEARTBEAT)
    assert counted(first) == 1
    pages[1].close()
    wait_until(lambda: counted(first) == 0, timeout=10, what="the last page to be uncounted")
