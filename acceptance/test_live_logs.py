"""A person watches a build's log live: every line reaches the page, in order, and the
launcher sent them over its log socket rather than a request each."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.sync.client import connect
from websockets.typing import Origin

from acceptance.stack import Stack, finished, first_build, log_lines, start

pytestmark = pytest.mark.xdist_group("builds")

LINES = 150
TICKER = f"""
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - count: sleep 3; for i in $(seq 1 {LINES}); do echo "line $i"; sleep 0.03; done
"""
SIGN_IN = (
    "from django.contrib.auth.models import User; from django.test import Client; "
    "user = User.objects.create_user('watcher', password='a long password 1'); "
    "client = Client(); client.force_login(user); print(client.cookies['sessionid'].value)"
)


def test_a_watched_build_streams_its_log_to_the_page_over_the_launchers_socket(
    stack: Stack, repo: Callable[..., tuple[Path, Path]]
) -> None:
    # Signed in first: the page opens as soon as the build exists, before its step prints.
    session = stack.shell(SIGN_IN)
    bare, _ = repo(TICKER, name="watched")
    row = first_build(stack, start(stack, bare))
    seen: list[str] = []
    with connect(
        f"ws://127.0.0.1:{stack.port}/ws/builds/{row['id']}/",
        additional_headers={"Cookie": f"sessionid={session}"},
        origin=Origin(stack.url),
    ) as page:
        page.send(json.dumps({"type": "subscribe", "step": "count", "from": 0}))
        while len(seen) < LINES:
            message = json.loads(page.recv(timeout=90))
            if message.get("type") != "lines" or message.get("step") != "count":
                continue
            for line in message["lines"]:
                # As the page does: a line it has is dropped; none may come after a hole.
                assert line["n"] <= len(seen), f"line {len(seen)} never came"
                if line["n"] == len(seen):
                    seen.append(line["m"])

    expected = [f"line {i}" for i in range(1, LINES + 1)]
    assert seen == expected
    assert finished(stack, row["id"], timeout=120)["status"] == "SUCCESS"
    assert log_lines(stack, row["id"], "count") == expected
    log = stack.data_dir / "workspaces" / f"build-{row['id']}.launcher.log"
    sent = re.search(r"count (\d+) by HTTP and (\d+) on the socket", log.read_text())
    assert sent is not None, log.read_text()
    assert int(sent[2]) > 5 * int(sent[1]), sent[0]
