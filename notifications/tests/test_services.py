"""Email and Slack notices of a job's settings, sent by the outbox after builds end.

Builds are finished through the real services (as the launcher's reports do) and the outbox is
run as its worker runs it; the emails go to a real SMTP server and the Slack calls to a
stand-in of Slack's Web API, both served from threads of the test.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from builds import outbox
from builds import services as build_services
from builds.models import Build, BuildStatus, OutboxMessage
from notifications.models import Notice, NoticeState
from notifications.services import NO_SMTP, notify_build
from notifications.tests.mail_servers import FakeSlack, Inbox, serve_smtp
from pipelines.models import Event, Job, Pipeline
from pipelines.tests.factories import XSS, event_from_yaml, pipeline_from_yaml

pytestmark = pytest.mark.django_db

WATCH_FAILURES = """
jobs:
  main:
    image: node:18
    requires: [~commit]
    settings:
      email:
        addresses: [dev@example.com, lead@example.com]
        statuses: [FAILURE]
      slack:
        channels: [builds, alerts]
        statuses: [FAILURE]
    steps:
      - test: make test
"""

EMAIL_ONLY = """
jobs:
  main:
    image: node:18
    requires: [~commit]
    settings:
      email: dev@example.com
    steps:
      - test: make test
"""


def build_of(pipeline: Pipeline, text: str) -> Build:
    """The main build of a new event of the pipeline, queued."""
    event = event_from_yaml(pipeline, text)
    return Build.objects.get(event=event, job__name="main")


def finish(build: Build, status: str, **kwargs: Any) -> Build:
    """What the launcher reports: RUNNING, then its final status."""
    build_services.mark_running(build_id=build.pk)
    return build_services.finish_build(build_id=build.pk, status=status, **kwargs)


def run_outbox() -> None:
    """What the worker does after the commits: every due outbox row."""
    outbox.dispatch()


def slack_texts(slack: FakeSlack) -> list[tuple[str, str]]:
    return [(call["channel"], call["text"].split(" ", 1)[0]) for call in slack.messages()]


def test_a_failing_then_passing_build_sends_failed_then_fixed_and_nothing_more(
    owner: User, smtp: Inbox, slack: FakeSlack
) -> None:
    pipeline = pipeline_from_yaml(WATCH_FAILURES, owner=owner)

    failed = finish(build_of(pipeline, WATCH_FAILURES), BuildStatus.FAILURE)
    run_outbox()

    assert sorted(r for mail in smtp.received for r in mail.recipients) == [
        "dev@example.com",
        "lead@example.com",
    ]
    assert {mail.subject for mail in smtp.received} == {
        f"FAILURE - Screwdriver local/app main #{failed.pk}"
    }
    assert {mail.sender for mail in smtp.received} == {"sd@example.com"}
    link = f"https://sd.example.com/pipelines/{pipeline.pk}/builds/{failed.pk}"
    assert link in smtp.received[0].part("text/plain")
    assert f'href="{link}"' in smtp.received[0].part("text/html")
    assert sorted(slack_texts(slack)) == [("alerts", "*FAILURE*"), ("builds", "*FAILURE*")]
    assert {call["authorization"] for call in slack.messages()} == {"Bearer xoxb-test"}
    assert slack.messages()[0]["attachments"][0]["title_link"] == link

    fixed = finish(build_of(pipeline, WATCH_FAILURES), BuildStatus.SUCCESS)
    run_outbox()

    assert len(smtp.received) == 4
    assert {mail.subject for mail in smtp.received[2:]} == {
        f"FIXED - Screwdriver local/app main #{fixed.pk}"
    }
    assert sorted(slack_texts(slack)[2:]) == [("alerts", "*FIXED*"), ("builds", "*FIXED*")]

    # A second success is no news; a rerun of every handler sends nothing twice.
    finish(build_of(pipeline, WATCH_FAILURES), BuildStatus.SUCCESS)
    run_outbox()
    for build_id in (failed.pk, fixed.pk):
        assert notify_build(build_id=build_id) == 0
    assert (len(smtp.received), len(slack.messages())) == (4, 4)
    assert set(Notice.objects.values_list("state", flat=True)) == {NoticeState.SENT}
    assert not OutboxMessage.objects.filter(done_at__isnull=True).exists()
    assert set(OutboxMessage.objects.values_list("error", flat=True)) <= {
        "",
        "Superseded by a later change of the build.",
    }


def test_a_down_smtp_server_fails_nothing_and_the_email_goes_once_it_is_up(
    owner: User, smtp_port: int
) -> None:
    pipeline = pipeline_from_yaml(EMAIL_ONLY, owner=owner)
    build = finish(build_of(pipeline, EMAIL_ONLY), BuildStatus.FAILURE)
    assert build.status == BuildStatus.FAILURE

    run_outbox()  # nothing listens on the SMTP port

    notice = Notice.objects.get(build=build)
    assert (notice.state, notice.attempts, notice.recipient) == (
        NoticeState.PENDING,
        1,
        "dev@example.com",
    )
    assert f"127.0.0.1:{smtp_port} did not take the connection" in notice.error
    row = OutboxMessage.objects.get(build=build, handler="notify", status=BuildStatus.FAILURE)
    assert row.done_at is None and row.due_at > timezone.now()
    assert "not sent yet" in row.error

    with serve_smtp(smtp_port, Inbox()) as inbox:
        run_outbox()
        assert inbox.received == []  # not due yet: it backs off
        OutboxMessage.objects.filter(pk=row.pk).update(due_at=timezone.now())
        outbox.sweep()
        outbox.sweep()

    assert [(mail.recipients, mail.subject) for mail in inbox.received] == [
        (["dev@example.com"], f"FAILURE - Screwdriver local/app main #{build.pk}")
    ]
    notice.refresh_from_db()
    assert (notice.state, notice.attempts, notice.error) == (NoticeState.SENT, 2, "")
    row.refresh_from_db()
    assert row.done_at is not None


def test_a_notice_is_given_up_after_the_outboxs_last_try_and_says_why(
    owner: User, smtp_port: int
) -> None:
    pipeline = pipeline_from_yaml(EMAIL_ONLY, owner=owner)
    build = finish(build_of(pipeline, EMAIL_ONLY), BuildStatus.FAILURE)
    row = OutboxMessage.objects.get(build=build, handler="notify", status=BuildStatus.FAILURE)

    for _ in range(outbox.MAX_ATTEMPTS):
        OutboxMessage.objects.filter(pk=row.pk).update(due_at=timezone.now())
        outbox.sweep()

    notice = Notice.objects.get(build=build)
    assert notice.state == NoticeState.FAILED
    assert notice.error.startswith(f"Gave up after {outbox.MAX_ATTEMPTS} tries: The SMTP server")
    row.refresh_from_db()
    assert row.done_at is not None


def test_a_channel_slack_refuses_fails_alone_and_a_rate_limit_is_tried_again(
    owner: User, slack: FakeSlack, settings: Any
) -> None:
    settings.SD_SMTP_HOST = ""
    slack.answers["builds"] = {"ok": False, "error": "ratelimited"}
    slack.answers["alerts"] = {"ok": False, "error": "channel_not_found"}
    pipeline = pipeline_from_yaml(WATCH_FAILURES, owner=owner)
    build = finish(build_of(pipeline, WATCH_FAILURES), BuildStatus.FAILURE)

    def states() -> dict[tuple[str, str], tuple[str, str]]:
        notices = Notice.objects.filter(build=build).order_by("pk")
        return {(n.channel, n.recipient): (n.state, n.error) for n in notices}

    run_outbox()

    limited = "Slack answered ratelimited; the message is tried again later."
    assert states() == {
        ("email", "dev@example.com"): (NoticeState.FAILED, NO_SMTP),
        ("email", "lead@example.com"): (NoticeState.FAILED, NO_SMTP),
        ("slack", "builds"): (NoticeState.PENDING, limited),
        # Slack limits the whole workspace: the next channel waits without being asked.
        ("slack", "alerts"): (NoticeState.PENDING, limited),
    }
    assert [call["channel"] for call in slack.messages()] == ["builds"]

    del slack.answers["builds"]
    OutboxMessage.objects.filter(build=build, handler="notify").update(due_at=timezone.now())
    outbox.sweep()
    outbox.sweep()

    assert states()[("slack", "builds")] == (NoticeState.SENT, "")
    assert states()[("slack", "alerts")] == (
        NoticeState.FAILED,
        "Slack refused the message to alerts: channel_not_found.",
    )
    assert [call["channel"] for call in slack.messages()] == ["builds", "builds", "alerts"]
    assert OutboxMessage.objects.get(
        build=build, handler="notify", status=BuildStatus.FAILURE
    ).done_at


def test_meta_picks_the_jobs_channels_format_and_line_and_everything_is_escaped(
    owner: User, slack: FakeSlack, smtp: Inbox
) -> None:
    pipeline = pipeline_from_yaml(WATCH_FAILURES, owner=owner)
    build = build_of(pipeline, WATCH_FAILURES)
    Event.objects.filter(pk=build.event_id).update(
        commit={"message": f"fix {XSS} & more", "url": "javascript:alert(1)"}
    )
    meta = {
        "notification": {
            "slack": {
                "message": "every job",
                "main": {"channels": "oncall, ,team-x", "minimized": "true", "message": XSS},
            },
            "email": {"main": {"addresses": "ops@example.com,not an address"}},
        },
        "commit": {"changedFiles": f"a.txt,{XSS}.txt"},
    }
    finish(build, BuildStatus.FAILURE, meta=meta)
    run_outbox()

    assert sorted(call["channel"] for call in slack.messages()) == ["oncall", "team-x"]
    call = slack.messages()[0]
    # The job's own line, escaped: Slack shows it, and it mentions or links nobody.
    assert call["text"].endswith("\n&lt;img src=x onerror=alert(1)&gt;")
    assert "<img" not in call["text"]
    # Minimized: a link to the build only, no commit message.
    assert call["attachments"][0]["fields"][0]["value"] == (
        f"<https://sd.example.com/pipelines/{pipeline.pk}/builds/{build.pk}|#{build.pk}>"
    )
    assert [mail.recipients for mail in smtp.received] == [["ops@example.com"]]
    html = smtp.received[0].part("text/html")
    assert XSS not in html and "javascript:" not in html
    assert "fix &lt;img src=x onerror=alert(1)&gt; &amp; more" in html
    assert "<li>&lt;img src=x onerror=alert(1)&gt;.txt</li>" in html


def test_the_full_slack_format_escapes_the_commit_and_the_commit_author_can_be_emailed(
    owner: User, slack: FakeSlack, smtp: Inbox, settings: Any
) -> None:
    settings.SD_NOTIFY_COMMIT_AUTHOR = True
    pipeline = pipeline_from_yaml(WATCH_FAILURES, owner=owner)
    build = build_of(pipeline, WATCH_FAILURES)
    Event.objects.filter(pk=build.event_id).update(
        commit={
            "message": "<!channel> & <https://evil.example|click>",
            "url": "https://git.example.com/c/1",
            "author": {"name": "Alice", "username": "alice@example.com"},
        }
    )
    finish(build, BuildStatus.FAILURE)
    run_outbox()

    text = slack.messages()[0]["attachments"][0]["text"]
    assert text.startswith(
        "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt; (<https://git.example.com/c/1|"
    )
    assert sorted(r for mail in smtp.received for r in mail.recipients) == [
        "alice@example.com",
        "dev@example.com",
        "lead@example.com",
    ]


def test_statuses_are_followed_as_listed_and_builds_without_settings_send_nothing(
    owner: User, slack: FakeSlack, smtp: Inbox
) -> None:
    every = WATCH_FAILURES.replace("statuses: [FAILURE]", "statuses: [RUNNING, SUCCESS]")
    pipeline = pipeline_from_yaml(every, owner=owner)
    build = build_of(pipeline, every)
    build_services.mark_running(build_id=build.pk)
    run_outbox()
    build_services.finish_build(build_id=build.pk, status=BuildStatus.SUCCESS)
    run_outbox()

    assert [mail.subject.split(" ")[0] for mail in smtp.received] == ["RUNNING"] * 2 + [
        "SUCCESS"
    ] * 2
    quiet = pipeline_from_yaml(EMAIL_ONLY.replace("settings:", "x:"), owner=owner, name="q/q")
    finish(build_of(quiet, EMAIL_ONLY.replace("settings:", "x:")), BuildStatus.FAILURE)
    run_outbox()
    assert len(smtp.received) == 4 and len(slack.messages()) == 4


@pytest.fixture
def silent_smtp(smtp_port: int, settings: Any) -> Iterator[list[socket.socket]]:
    """An SMTP port that takes connections and never says a word (a hung mail server)."""
    listener = socket.create_server(("127.0.0.1", smtp_port))
    taken: list[socket.socket] = []

    def take() -> None:
        while True:
            try:
                taken.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=take, daemon=True).start()
    yield taken
    listener.close()
    for connection in taken:
        connection.close()


@pytest.mark.slow
def test_a_hung_smtp_server_does_not_slow_a_build_down(
    owner: User, silent_smtp: list[socket.socket], settings: Any, smtp_port: int
) -> None:
    settings.SD_SMTP_TIMEOUT_SECONDS = 1.5
    pipeline = pipeline_from_yaml(EMAIL_ONLY, owner=owner)
    build = build_of(pipeline, EMAIL_ONLY)

    started = time.monotonic()
    finish(build, BuildStatus.FAILURE)
    finishing = time.monotonic() - started
    # The launcher's final report only wrote the outbox row: no mail server was asked.
    assert silent_smtp == []
    assert finishing < settings.SD_SMTP_TIMEOUT_SECONDS

    started = time.monotonic()
    run_outbox()
    assert time.monotonic() - started >= settings.SD_SMTP_TIMEOUT_SECONDS
    assert len(silent_smtp) == 1
    notice = Notice.objects.get(build=build)
    assert notice.state == NoticeState.PENDING and "timed out" in notice.error


def test_a_pull_request_build_notifies_whom_the_branch_names_never_whom_the_pr_names(
    smtp: Inbox, github_pipeline: Pipeline, pr_build: Callable[..., Build]
) -> None:
    build = pr_build("e" * 40)
    # The branch's screwdriver.yaml watches the job's failures; the pull request's own file
    # (its event's snapshot) and its build's meta try to send them elsewhere.
    base = Job.objects.get(pipeline=github_pipeline, name="test")
    base.permutations = [{**base.permutations[0], "settings": {"email": "team@example.com"}}]
    base.save(update_fields=["permutations"])
    event = build.event
    event.job_configs = {
        name: [{**configs[0], "settings": {"email": "stranger@example.com"}}]
        for name, configs in event.job_configs.items()
    }
    event.save(update_fields=["job_configs"])
    meta = {"notification": {"email": {build.job.name: {"addresses": "spam@example.com"}}}}

    finish(build, BuildStatus.FAILURE, meta=meta)
    run_outbox()

    assert [mail.recipients for mail in smtp.received] == [["team@example.com"]]
    assert smtp.received[0].subject == (
        f"FAILURE - Screwdriver Codertocat/Hello-World PR-7:test #{build.pk}"
    )


def test_a_branch_builds_meta_line_mentions_people_as_screwdrivers_guide_shows(
    owner: User, slack: FakeSlack, settings: Any
) -> None:
    settings.SD_SMTP_HOST = ""
    pipeline = pipeline_from_yaml(WATCH_FAILURES, owner=owner)
    build = build_of(pipeline, WATCH_FAILURES)
    meta = {"notification": {"slack": {"message": "<@yoshwata> <!here> Hello <b>Meta</b>!"}}}

    finish(build, BuildStatus.FAILURE, meta=meta)
    run_outbox()

    texts = {call["text"] for call in slack.messages()}
    assert len(texts) == 1
    assert texts.pop().endswith("\n<@yoshwata> <!here> Hello &lt;b&gt;Meta&lt;/b&gt;!")


def test_a_pull_requests_meta_line_mentions_nobody_and_the_branchs_settings_line_does(
    slack: FakeSlack, settings: Any, github_pipeline: Pipeline, pr_build: Callable[..., Build]
) -> None:
    settings.SD_SMTP_HOST = ""
    base = Job.objects.get(pipeline=github_pipeline, name="test")
    slack_settings = {"channels": ["builds"], "message": "<!subteam^S1|@reviewers> a PR failed"}
    base.permutations = [{**base.permutations[0], "settings": {"slack": slack_settings}}]
    base.save(update_fields=["permutations"])

    first = pr_build("e" * 40)
    finish(first, BuildStatus.FAILURE)
    run_outbox()
    second = pr_build("f" * 40)
    finish(second, BuildStatus.FAILURE, meta={"notification": {"slack": {"message": "<!channel>"}}})
    run_outbox()

    texts = [call["text"] for call in slack.messages()]
    assert len(texts) == 2
    assert texts[0].endswith("\n<!subteam^S1|@reviewers> a PR failed")
    # The pull request's author wrote this one: Slack shows it and notifies nobody.
    assert texts[1].endswith("\n&lt;!channel&gt;")


SEVERAL_WORKSPACES = WATCH_FAILURES.replace(
    "channels: [builds, alerts]",
    "channels: [builds, 'team-b:alerts', 'team-b:deploys', 'main:ops', 'nowhere:x']",
)


def test_a_channel_named_workspace_colon_channel_goes_with_that_workspaces_token(
    owner: User, slack: FakeSlack, settings: Any
) -> None:
    settings.SD_SMTP_HOST = ""
    settings.SD_SLACK_DEFAULT_WORKSPACE = "main"
    settings.SD_SLACK_WORKSPACES = {"team-b": "xoxb-team-b"}
    pipeline = pipeline_from_yaml(SEVERAL_WORKSPACES, owner=owner)
    build = build_of(pipeline, SEVERAL_WORKSPACES)
    # team-b's Slack is rate-limited: its next channel waits, the default workspace's do not.
    slack.answers["alerts"] = {"ok": False, "error": "ratelimited"}

    finish(build, BuildStatus.FAILURE)
    run_outbox()

    asked = [(call["channel"], call["authorization"]) for call in slack.messages()]
    assert asked == [
        ("builds", "Bearer xoxb-test"),
        ("alerts", "Bearer xoxb-team-b"),
        ("ops", "Bearer xoxb-test"),
    ]
    states = {
        n.recipient: (n.state, n.error) for n in Notice.objects.filter(build=build, channel="slack")
    }
    limited = "Slack answered ratelimited; the message is tried again later."
    assert states == {
        "builds": (NoticeState.SENT, ""),
        "team-b:alerts": (NoticeState.PENDING, limited),
        "team-b:deploys": (NoticeState.PENDING, limited),
        "main:ops": (NoticeState.SENT, ""),
        "nowhere:x": (
            NoticeState.FAILED,
            "This server has no Slack token for the workspace nowhere: its operator names "
            "workspaces in SD_SLACK_WORKSPACES.",
        ),
    }

    del slack.answers["alerts"]
    OutboxMessage.objects.filter(build=build, handler="notify").update(due_at=timezone.now())
    outbox.sweep()

    assert [(c["channel"], c["authorization"]) for c in slack.messages()[3:]] == [
        ("alerts", "Bearer xoxb-team-b"),
        ("deploys", "Bearer xoxb-team-b"),
    ]
