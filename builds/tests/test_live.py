"""The build page's WebSocket: access, backlog, live lines after save, status, Redis layer."""

from __future__ import annotations

import asyncio
import socket
import time
from contextlib import ExitStack
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from builds import live, logs, services
from builds.consumers import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED
from builds.live_count import MIN_WRITE_SECONDS, live_connections
from builds.models import Build, BuildStatus, Event, LiveCount, Step
from pipelines.models import Job, Pipeline
from screwdriver_site.asgi import application
from screwdriver_site.tokens import issue_build_token

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def _make_build() -> Build:
    pipeline = Pipeline.objects.create(
        name="a/b",
        scm_uri="local:/x.git:main",
        checkout_url="/x.git#main",
        scm_repo={"private": False},
    )
    job = Job.objects.create(pipeline=pipeline, name="main")
    event = Event.objects.create(pipeline=pipeline, sha="a" * 40, start_from="~commit")
    build = Build.objects.create(
        job=job, event=event, number=1, sha="a" * 40, status=BuildStatus.QUEUED
    )
    Step.objects.create(build=build, position=0, name="hello")
    return build


def _append(build: Build, seq: int, first: int, texts: list[str]) -> bool:
    step = Step.objects.get(build=build, name="hello")
    return logs.append_batch(
        step=step,
        seq=seq,
        first_line=first,
        lines=[{"t": 1000 + i, "m": m} for i, m in enumerate(texts)],
    )


def _session_cookie(user: User | None) -> str:
    if user is None:
        return ""
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def _connect(
    build: Build, user: User | None, build_id: int | None = None
) -> WebsocketCommunicator:
    """A browser's WebSocket: same-origin, with the session cookie of a signed-in user."""
    cookie = await sync_to_async(_session_cookie)(user)
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return WebsocketCommunicator(
        application, f"/ws/builds/{build_id or build.pk}/", headers=headers
    )


async def _user(name: str = "alice") -> User:
    return await sync_to_async(User.objects.create_user)(username=name, password="pw-123456")


async def test_an_anonymous_visitor_is_refused() -> None:
    build = await sync_to_async(_make_build)()
    communicator = await _connect(build, None)
    connected, code = await communicator.connect()
    assert not connected and code == CLOSE_UNAUTHENTICATED


async def test_a_page_of_another_origin_is_refused() -> None:
    build = await sync_to_async(_make_build)()
    user = await _user()
    cookie = await sync_to_async(_session_cookie)(user)
    communicator = WebsocketCommunicator(
        application,
        f"/ws/builds/{build.pk}/",
        headers=[(b"origin", b"http://evil.example"), (b"cookie", cookie.encode())],
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_a_build_that_does_not_exist_is_refused() -> None:
    build = await sync_to_async(_make_build)()
    communicator = await _connect(build, await _user(), build_id=build.pk + 999)
    connected, code = await communicator.connect()
    assert not connected and code == CLOSE_FORBIDDEN


async def test_an_outsider_is_refused_a_build_of_a_private_pipeline() -> None:
    build = await sync_to_async(_make_build)()
    await sync_to_async(Pipeline.objects.update)(scm_repo={"private": True})
    communicator = await _connect(build, await _user("outsider"))
    connected, code = await communicator.connect()
    assert not connected and code == CLOSE_FORBIDDEN


async def test_subscribing_sends_the_backlog_then_lines_as_they_are_saved() -> None:
    build = await sync_to_async(_make_build)()
    await sync_to_async(_append)(build, 0, 0, ["one", "two", "<img src=x onerror=alert(1)>"])
    communicator = await _connect(build, await _user())
    connected, _ = await communicator.connect()
    assert connected

    await communicator.send_json_to({"type": "subscribe", "step": "hello", "from": 1})
    backlog = await communicator.receive_json_from(timeout=5)
    assert backlog == {
        "type": "lines",
        "step": "hello",
        "lines": [
            {"n": 1, "t": 1001, "m": "two"},
            {"n": 2, "t": 1002, "m": "<img src=x onerror=alert(1)>"},
        ],
    }

    assert await sync_to_async(_append)(build, 1, 3, ["three"])
    live = await communicator.receive_json_from(timeout=5)
    assert live == {"type": "lines", "step": "hello", "lines": [{"n": 3, "t": 1000, "m": "three"}]}

    # A resent batch is stored once and published once.
    assert not await sync_to_async(_append)(build, 1, 3, ["three"])
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_a_status_change_reaches_the_page_with_the_steps() -> None:
    build = await sync_to_async(_make_build)()
    communicator = await _connect(build, await _user())
    connected, _ = await communicator.connect()
    assert connected

    await sync_to_async(services.mark_running)(build_id=build.pk)
    message = await communicator.receive_json_from(timeout=5)
    assert message["type"] == "build"
    assert message["build"]["status"] == "RUNNING"
    assert [s["name"] for s in message["build"]["steps"]] == ["hello"]
    await communicator.disconnect()


async def test_step_reports_sent_together_reach_the_page_at_once() -> None:
    build = await sync_to_async(_make_build)()
    communicator = await _connect(build, await _user())
    connected, _ = await communicator.connect()
    assert connected
    launcher = APIClient()
    launcher.credentials(
        HTTP_AUTHORIZATION=f"Bearer {await sync_to_async(issue_build_token)(build)}"
    )
    reports = [
        {"name": "hello", "startTime": "2024-05-01T10:00:00Z"},
        {"name": "hello", "endTime": "2024-05-01T10:00:01Z", "code": 7},
    ]

    answer = await sync_to_async(launcher.put)(
        f"/v4/builds/{build.pk}/steps", reports, format="json"
    )

    assert answer.status_code == 200
    message = await communicator.receive_json_from(timeout=5)
    assert message["type"] == "build"
    assert [(s["name"], s["code"]) for s in message["build"]["steps"]] == [("hello", 7)]
    # One message for the request, not one per report.
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_a_bad_subscription_gets_an_error_and_keeps_the_socket() -> None:
    build = await sync_to_async(_make_build)()
    communicator = await _connect(build, await _user())
    await communicator.connect()
    await communicator.send_json_to({"type": "subscribe", "step": "hello", "from": -1})
    assert (await communicator.receive_json_from(timeout=5))["type"] == "error"
    await communicator.send_json_to({"type": "subscribe", "step": "nope", "from": 0})
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.skipif(
    not _redis_up(),
    reason="no Redis on 127.0.0.1:6379 for the channel-layer test: start redis-server",
)
async def test_with_the_redis_layer_a_line_saved_in_one_process_reaches_another(
    settings: Any,
) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"], "prefix": f"sd-test-{id(settings)}"},
        }
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    try:
        layer = get_channel_layer()
        assert type(layer).__name__ == "RedisChannelLayer"
        build = await sync_to_async(_make_build)()
        communicator = await _connect(build, await _user())
        connected, _ = await communicator.connect()
        assert connected
        await communicator.send_json_to({"type": "subscribe", "step": "hello", "from": 0})
        assert await communicator.receive_nothing(timeout=0.3)
        assert await sync_to_async(_append)(build, 0, 0, ["through redis"])
        message = await communicator.receive_json_from(timeout=5)
        assert message["lines"][0]["m"] == "through redis"
        await communicator.disconnect()
    finally:
        channel_layers.backends.clear()


async def test_open_build_pages_are_counted_for_metrics_and_refused_ones_are_not() -> None:
    @sync_to_async
    def connections() -> tuple[int, int]:
        # What /metrics says, and how many processes' rows it was summed from.
        return live_connections(timezone.now()), LiveCount.objects.count()

    async def settled(expected: tuple[int, int]) -> tuple[int, int]:
        # Changes within MIN_WRITE_SECONDS of a write are written together a moment later.
        deadline = time.monotonic() + 3 * MIN_WRITE_SECONDS
        while (found := await connections()) != expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return found

    build = await sync_to_async(_make_build)()
    before, _ = await connections()
    refused = await _connect(build, None)
    assert not (await refused.connect())[0]
    assert (await connections())[0] == before
    pages = [await _connect(build, await _user(name)) for name in ("alice", "bob")]
    for page in pages:
        assert (await page.connect())[0]
    assert await settled((before + 2, 1)) == (before + 2, 1)
    await pages[0].disconnect()
    assert await settled((before + 1, 1)) == (before + 1, 1)
    await pages[1].disconnect()
    assert await settled((before, 1)) == (before, 1)


async def test_a_burst_of_pages_opened_and_closed_writes_the_count_a_few_times_only() -> None:
    build = await sync_to_async(_make_build)()
    user = await _user()
    writes: list[str] = []

    def count_writes(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if "livecount" in sql.lower() and not sql.lstrip().upper().startswith("SELECT"):
            writes.append(sql)
        return execute(sql, params, many, context)

    # Installed on the connection of the thread that every database_sync_to_async call uses.
    wrapper = ExitStack()
    await sync_to_async(lambda: wrapper.enter_context(connection.execute_wrapper(count_writes)))()
    try:
        started = time.monotonic()
        for _ in range(20):
            page = await _connect(build, user)
            assert (await page.connect())[0]
            await page.disconnect()
        burst = time.monotonic() - started
        await asyncio.sleep(2 * MIN_WRITE_SECONDS)
    finally:
        await sync_to_async(wrapper.close)()

    # 40 changes: a write (and its sweep of forgotten rows) per MIN_WRITE_SECONDS at most.
    assert len(writes) <= 2 * (2 + int(burst / MIN_WRITE_SECONDS)), writes
    assert await sync_to_async(live_connections)(timezone.now()) == 0


async def test_only_a_build_a_page_watches_is_published_on_the_in_process_layer() -> None:
    build = await sync_to_async(_make_build)()
    assert not live.watched(build.pk)
    communicator = await _connect(build, await _user())
    connected, _ = await communicator.connect()
    assert connected and live.watched(build.pk)
    await communicator.disconnect()
    assert not live.watched(build.pk)
