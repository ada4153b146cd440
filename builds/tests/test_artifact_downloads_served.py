"""Artifacts through the real ASGI server (`screwdriver_site.daphne_server`, what `make run`
serves): a client that stops reading holds the server to a few chunks of a large file, and one
that reads gets every byte, on a connection that then serves the next request."""

from __future__ import annotations

import hashlib
import http.client
import io
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from builds.artifacts import store_artifact
from builds.models import Build
from conftest import database_url
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml
from screwdriver_site.tokens import issue_build_token
from tools.live_stack import LiveStack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

YAML = """\
jobs:
  main:
    image: node:22
    requires: [~commit]
    steps:
      - a: echo a
"""
SIZE = 150 * 1024 * 1024


class Zeros(io.RawIOBase):
    """`size` zero bytes, read without holding them."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def resident_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
def build(owner: User) -> Build:
    pipeline = pipeline_from_yaml(YAML, owner=owner, private=True)
    build = Build.objects.get(event=event_from_yaml(pipeline, YAML))
    store_artifact(build, "big.bin", io.BufferedReader(Zeros(SIZE)))
    return build


@pytest.fixture
def server(transactional_db: None, tmp_path: Path, outputs_folder: Path) -> Iterator[LiveStack]:
    stack = LiveStack.start(
        database_url=database_url(),
        data_dir=tmp_path / "sd-data",
        secret_key=django_settings.SECRET_KEY,
        extra_env={"SD_STORAGE_URL": f"file://{outputs_folder}"},
        worker=False,
    )
    yield stack
    stack.stop()


def test_a_client_that_stops_reading_holds_the_server_to_a_few_chunks(
    server: LiveStack, build: Build
) -> None:
    assert server.server is not None
    before = resident_mb(server.server.pid)
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", server.port))
        request = (
            f"GET /v4/builds/{build.pk}/artifacts/big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {issue_build_token(build)}\r\n\r\n"
        )
        client.sendall(request.encode())
        assert client.recv(64).startswith(b"HTTP/1.1 200")
        time.sleep(3)  # the server would have read the whole file into its buffer by now
        grown = resident_mb(server.server.pid) - before

    assert grown < 30, f"the server grew by {grown} MB for a client that reads nothing"


def test_a_client_that_reads_gets_every_byte_and_keeps_its_connection(
    server: LiveStack, build: Build
) -> None:
    headers = {"Authorization": f"Bearer {issue_build_token(build)}"}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    digest, count = hashlib.sha256(), 0

    connection.request("GET", f"/v4/builds/{build.pk}/artifacts/big.bin", headers=headers)
    whole = connection.getresponse()
    while chunk := whole.read(1 << 20):
        digest.update(chunk)
        count += len(chunk)
    connection.request(
        "GET", f"/v4/builds/{build.pk}/artifacts/big.bin", headers={**headers, "Range": "bytes=-4"}
    )
    tail = connection.getresponse()

    assert (whole.status, count) == (200, SIZE)
    assert digest.hexdigest() == hashlib.sha256(bytes(SIZE)).hexdigest()
    assert (tail.status, tail.read()) == (206, b"\0\0\0\0")
