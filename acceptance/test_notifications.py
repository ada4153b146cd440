"""A job's `settings` in `make run`: a failing push emails and posts to Slack, the push that
fixes it says FIXED. The SMTP server (aiosmtpd's) and Slack's Web API run in this process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from acceptance.stack import (
    Stack,
    finished,
    first_build,
    free_port,
    git,
    new_stack,
    start,
    wait_for,
)
from notifications.tests.mail_servers import FakeSlack, Inbox, serve_slack, serve_smtp

pytestmark = pytest.mark.xdist_group("notifications")

YAML = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    settings:
      email:
        addresses: [dev@example.com]
        statuses: [FAILURE]
      slack:
        channels: [builds]
        statuses: [FAILURE]
    steps:
      - test: test "$(cat result 2>/dev/null)" = pass
"""


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[int, Inbox]]:
    pytest.importorskip("aiosmtpd", reason="pip install -r requirements-dev.txt (aiosmtpd)")
    port = free_port()
    with serve_smtp(port, Inbox()) as received:
        yield port, received


@pytest.fixture(scope="module")
def slack() -> Iterator[tuple[str, FakeSlack]]:
    with serve_slack() as served:
        yield served


@pytest.fixture(scope="module")
def notify_stack(inbox: tuple[int, Inbox], slack: tuple[str, FakeSlack]) -> Iterator[Stack]:
    stack = new_stack(
        "notify",
        SD_SMTP_HOST="127.0.0.1",
        SD_SMTP_PORT=str(inbox[0]),
        SD_EMAIL_FROM="sd@example.com",
        SD_SLACK_TOKEN="xoxb-acceptance",
        SD_SLACK_API_URL=slack[0],
        SD_DEMO="false",
    )
    yield stack
    stack.kill()


def test_a_failing_push_is_emailed_and_posted_and_the_fixing_push_says_fixed(
    notify_stack: Stack,
    inbox: tuple[int, Inbox],
    slack: tuple[str, FakeSlack],
    repo: Callable[..., tuple[Path, Path]],
) -> None:
    stack, (_, received), (_, posted) = notify_stack, inbox, slack
    bare, work = repo(YAML, name="notified")

    event = start(stack, bare)
    failing = finished(stack, first_build(stack, event)["id"], timeout=120)
    assert failing["status"] == "FAILURE"
    wait_for(
        lambda: received.received and posted.messages(), timeout=60, what="the FAILURE notices"
    )
    (mail,) = received.received
    assert mail.recipients == ["dev@example.com"]
    assert mail.subject.startswith("FAILURE - Screwdriver ")
    assert mail.subject.endswith(f" main #{failing['id']}")
    link = f"{stack.url}/pipelines/{event['pipelineId']}/builds/{failing['id']}"
    assert link in mail.part("text/plain")

    (work / "result").write_text("pass\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "make it pass", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)

    wait_for(lambda: len(received.received) == 2, timeout=120, what="the FIXED email")
    assert received.received[1].subject.startswith("FIXED - Screwdriver ")
    wait_for(lambda: len(posted.messages()) == 2, timeout=30, what="the FIXED Slack message")
    assert [(m["channel"], m["text"].split(" ")[0]) for m in posted.messages()] == [
        ("builds", "*FAILURE*"),
        ("builds", "*FIXED*"),
    ]
