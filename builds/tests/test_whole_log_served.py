"""A build's whole log through the real ASGI server (`screwdriver_site.daphne_server`, what
`make run` serves): it is sent while it is read, never read whole first."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from builds import logs
from builds.models import Build, BuildStatus, Step
from conftest import database_url
from pipelines.models import Event, Job, Pipeline, PipelinePermission
from pipelines.services import create_user_token
from tools.live_stack import LiveStack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

T0 = 1_700_000_000_000
# About 25 MB of log: far more than the sockets' buffers and a page read hold between them.
LINES = 200_000
FILLER = "x" * 110


@pytest.fixture
def build(owner: User) -> Build:
    pipeline = Pipeline.objects.create(
        name="local/app",
        scm_uri="local:/srv/app.git:main",
        checkout_url="/srv/app.git#main",
        scm_repo={"branch": "main", "private": True},
    )
    PipelinePermission.objects.create(pipeline=pipeline, user=owner, role="admin")
    job = Job.objects.create(pipeline=pipeline, name="main")
    event = Event.objects.create(pipeline=pipeline, sha="a" * 40, start_from="~commit")
    build = Build.objects.create(
        job=job, event=event, number=1, sha=event.sha, status=BuildStatus.RUNNING
    )
    install = Step.objects.create(build=build, position=1, name="install", code=0)
    Step.objects.create(build=build, position=2, name="publish")
    for seq, first in enumerate(range(0, LINES, logs.MAX_BATCH_LINES)):
        lines = [{"t": T0, "m": f"{n:06d} {FILLER}"} for n in range(first, first + 1000)]
        logs.append_batch(step=install, seq=seq, first_line=first, lines=lines)
    return build


@pytest.fixture
def server(transactional_db: None, tmp_path: Path) -> Iterator[LiveStack]:
    stack = LiveStack.start(
        database_url=database_url(),
        data_dir=tmp_path / "sd-data",
        secret_key=django_settings.SECRET_KEY,
        worker=False,
    )
    yield stack
    stack.stop()


def test_daphne_sends_the_first_bytes_before_it_has_read_the_whole_log(
    server: LiveStack, build: Build, owner: User
) -> None:
    token = create_user_token(user=owner, name="download").value
    sock = socket.socket()
    # A small window: the server can get ahead of this client by its buffers only.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(60)
    sock.connect(("127.0.0.1", server.port))
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    connection.sock = sock
    connection.request(
        "GET", f"/v4/builds/{build.pk}/logs", headers={"Authorization": f"Bearer {token}"}
    )
    response = connection.getresponse()
    first = response.read(4096)
    assert response.status == 200
    assert first.startswith(b"=== step install (exit code 0) ===\n000000 ")

    # Written after the first bytes came: a server that had read the whole log before
    # sending them could not send this line.
    later = Step.objects.get(build=build, name="publish")
    logs.append_batch(step=later, seq=0, first_line=0, lines=[{"t": T0, "m": "written later"}])
    rest = response.read()
    connection.close()

    text = (first + rest).decode()
    assert text.endswith("=== step publish (not run) ===\nwritten later\n")
    assert text.count("\n") == LINES + 3
    assert f"{LINES - 1:06d} {FILLER}\n=== step publish" in text
