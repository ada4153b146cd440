"""The launcher's log socket: the build token only, batches stored as the log POST stores them
(in order, once, masked), acknowledged, and published to a watching page after they are saved."""

from __future__ import annotations

import base64
import json
import zlib
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from builds import consumers
from builds.consumers import (
    CLOSE_FORBIDDEN,
    CLOSE_TOO_BIG,
    CLOSE_UNAUTHENTICATED,
    MAX_FRAME_BYTES,
)
from builds.models import Build, BuildStatus, Event, LogBatch, Step
from pipelines.models import Job, Pipeline
from pipelines.services import create_user_token, set_secret
from screwdriver_site.asgi import application
from screwdriver_site.tokens import issue_build_token, issue_temporal_token

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

T0 = 1_700_000_000_000


def _make_build(name: str = "a/b") -> Build:
    pipeline = Pipeline.objects.create(
        name=name,
        scm_uri=f"local:/{name}.git:main",
        checkout_url=f"/{name}.git#main",
        scm_repo={"private": False},
    )
    job = Job.objects.create(
        pipeline=pipeline,
        name="main",
        permutations=[{"image": "alpine", "steps": [{"hello": "true"}], "secrets": ["TOKEN"]}],
    )
    event = Event.objects.create(pipeline=pipeline, sha="a" * 40, start_from="~commit")
    build = Build.objects.create(
        job=job, event=event, number=1, sha="a" * 40, status=BuildStatus.RUNNING
    )
    Step.objects.create(build=build, position=0, name="hello")
    set_secret(pipeline=pipeline, name="TOKEN", value="socket-secret-value")
    return build


def _frame(seq: int, first: int, texts: list[str], step: str = "hello") -> dict[str, Any]:
    data = "\n".join(texts).encode()
    return {
        "step": step,
        "seq": seq,
        "firstLine": first,
        "count": len(texts),
        "data": base64.b64encode(zlib.compress(data)).decode(),
        "times": [[T0, len(texts)]],
    }


async def _launcher(build_id: int, token: str | None) -> WebsocketCommunicator:
    headers = [] if token is None else [(b"authorization", f"Bearer {token}".encode())]
    return WebsocketCommunicator(application, f"/v4/builds/{build_id}/logs/socket", headers=headers)


async def _connected(build: Build) -> WebsocketCommunicator:
    token = await sync_to_async(issue_build_token)(build)
    socket = await _launcher(build.pk, token)
    connected, _ = await socket.connect()
    assert connected
    return socket


async def _refusal(socket: WebsocketCommunicator) -> tuple[int, str]:
    """The close code and reason of a socket the server accepted and then closed."""
    connected, _ = await socket.connect()
    assert connected
    closed = await socket.receive_output(timeout=5)
    assert closed["type"] == "websocket.close"
    return closed["code"], closed.get("reason", "")


async def _send(socket: WebsocketCommunicator, frame: Any) -> dict[str, Any]:
    await socket.send_to(text_data=json.dumps(frame))
    answer: dict[str, Any] = await socket.receive_json_from(timeout=5)
    return answer


def _texts(build: Build) -> list[str]:
    step = Step.objects.get(build=build, name="hello")
    return [
        raw.decode()
        for batch in LogBatch.objects.filter(step=step).order_by("seq")
        for raw in batch.unpack()
    ]


async def test_the_builds_token_streams_batches_that_are_stored_masked_and_acknowledged() -> None:
    build = await sync_to_async(_make_build)()
    socket = await _connected(build)

    answer = await _send(socket, _frame(0, 0, ["one", "the socket-secret-value here"]))
    assert answer == {"type": "stored", "step": "hello", "seq": 0, "stored": True, "live": False}
    answer = await _send(socket, _frame(1, 2, ["three"]))
    assert answer["stored"] is True
    assert await sync_to_async(_texts)(build) == ["one", "the **** here", "three"]
    await socket.disconnect()


async def test_a_resent_frame_is_acknowledged_and_stored_once() -> None:
    build = await sync_to_async(_make_build)()
    socket = await _connected(build)
    assert (await _send(socket, _frame(0, 0, ["once"])))["stored"] is True
    again = await _send(socket, _frame(0, 0, ["once"]))
    assert again == {"type": "stored", "step": "hello", "seq": 0, "stored": False, "live": False}
    assert await sync_to_async(_texts)(build) == ["once"]
    await socket.disconnect()


async def test_an_out_of_order_frame_gets_a_409_and_the_socket_stays_open() -> None:
    build = await sync_to_async(_make_build)()
    socket = await _connected(build)
    refused = await _send(socket, _frame(1, 5, ["early"]))
    assert refused["type"] == "error" and refused["status"] == 409
    assert refused["seq"] == 1 and "expects batch 0 starting at line 0" in refused["message"]
    # The launcher goes on with the frame the server expects, on the same socket.
    assert (await _send(socket, _frame(0, 0, ["first"])))["stored"] is True
    assert await sync_to_async(_texts)(build) == ["first"]
    await socket.disconnect()


async def test_bad_frames_get_the_status_the_log_post_would_answer() -> None:
    build = await sync_to_async(_make_build)()
    socket = await _connected(build)
    await socket.send_to(text_data="not json")
    assert (await socket.receive_json_from(timeout=5))["status"] == 400
    assert (await _send(socket, {**_frame(0, 0, ["x"]), "seq": -1}))["status"] == 400
    assert (await _send(socket, {**_frame(0, 0, ["x"]), "data": "%%%"}))["status"] == 400
    missing = await _send(socket, _frame(0, 0, ["x"], step="nope"))
    assert (missing["status"], missing["message"]) == (404, f"Build {build.pk} has no step nope.")
    await socket.disconnect()


async def test_a_frame_over_the_limit_closes_the_socket() -> None:
    build = await sync_to_async(_make_build)()
    socket = await _connected(build)
    await socket.send_to(text_data="x" * (MAX_FRAME_BYTES + 1))
    closed = await socket.receive_output(timeout=5)
    assert (closed["type"], closed["code"]) == ("websocket.close", CLOSE_TOO_BIG)
    assert "send bigger ones by HTTP" in closed["reason"]
    assert await sync_to_async(_texts)(build) == []


async def test_another_builds_token_is_refused_with_a_reason() -> None:
    build = await sync_to_async(_make_build)()
    other = await sync_to_async(_make_build)("c/d")
    token = await sync_to_async(issue_build_token)(other)
    code, reason = await _refusal(await _launcher(build.pk, token))
    assert (code, reason) == (CLOSE_FORBIDDEN, "A build token can only act on its own build.")


async def test_a_persons_token_a_temporal_one_and_none_are_refused() -> None:
    build = await sync_to_async(_make_build)()
    user = await sync_to_async(User.objects.create_user)(username="alice", password="pw-123456")
    api_token = (await sync_to_async(create_user_token)(user=user, name="t")).value
    code, reason = await _refusal(await _launcher(build.pk, api_token))
    assert (code, reason) == (CLOSE_FORBIDDEN, "Only the build's own launcher may call this.")

    temporal = await sync_to_async(issue_temporal_token)(build)
    assert (await _refusal(await _launcher(build.pk, temporal)))[0] == CLOSE_FORBIDDEN

    code, reason = await _refusal(await _launcher(build.pk, None))
    assert code == CLOSE_UNAUTHENTICATED and "Bearer" in reason
    code, reason = await _refusal(await _launcher(build.pk, "a.b.c"))
    assert code == CLOSE_UNAUTHENTICATED and reason.startswith("The token is not valid")


async def test_a_page_session_alone_is_refused() -> None:
    build = await sync_to_async(_make_build)()
    user = await sync_to_async(User.objects.create_user)(username="bob", password="pw-123456")
    client = Client()
    await sync_to_async(client.force_login)(user)
    socket = WebsocketCommunicator(
        application,
        f"/v4/builds/{build.pk}/logs/socket",
        headers=[(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())],
    )
    assert (await _refusal(socket))[0] == CLOSE_UNAUTHENTICATED


class Clock:
    """The consumer's clock (`time.monotonic`), moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def test_a_build_that_ended_long_ago_is_refused_with_a_later_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(consumers, "time", clock)
    build = await sync_to_async(_make_build)()
    socket = await _connected(build)
    assert (await _send(socket, _frame(0, 0, ["while it runs"])))["stored"] is True
    await sync_to_async(Build.objects.filter(pk=build.pk).update)(
        status=BuildStatus.ABORTED, end_time=timezone.now() - timedelta(hours=1)
    )
    # Within a second of the last check, the token is not looked at again.
    assert (await _send(socket, _frame(1, 1, ["just after"])))["stored"] is True
    clock.now += consumers.RECHECK_SECONDS
    await socket.send_to(text_data=json.dumps(_frame(2, 2, ["too late"])))
    closed = await socket.receive_output(timeout=5)
    assert (closed["type"], closed["code"]) == ("websocket.close", CLOSE_FORBIDDEN)
    assert "can no longer report" in closed["reason"]
    assert await sync_to_async(_texts)(build) == ["while it runs", "just after"]


async def test_a_watching_page_gets_the_lines_after_they_are_saved_and_is_told_live() -> None:
    build = await sync_to_async(_make_build)()
    user = await sync_to_async(User.objects.create_user)(username="carol", password="pw-123456")
    client = Client()
    await sync_to_async(client.force_login)(user)
    page = WebsocketCommunicator(
        application,
        f"/ws/builds/{build.pk}/",
        headers=[
            (b"origin", b"http://testserver"),
            (b"host", b"testserver"),
            (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
        ],
    )
    assert (await page.connect())[0]
    socket = await _connected(build)

    answer = await _send(socket, _frame(0, 0, ["seen", "socket-secret-value"]))
    assert answer["live"] is True
    shown = await page.receive_json_from(timeout=5)
    assert shown == {
        "type": "lines",
        "step": "hello",
        "lines": [{"n": 0, "t": T0, "m": "seen"}, {"n": 1, "t": T0, "m": "****"}],
    }
    # Published after the save: what the page got is in the database.
    assert await sync_to_async(_texts)(build) == ["seen", "****"]
    # A resend is not published again.
    assert (await _send(socket, _frame(0, 0, ["seen", "socket-secret-value"])))["stored"] is False
    assert await page.receive_nothing(timeout=0.3)
    await socket.disconnect()
    await page.disconnect()
