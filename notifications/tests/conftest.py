"""Fixtures of the notifications tests: a real SMTP server, a Slack stand-in, and GitHub's API
at the HTTP boundary for pull request builds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import respx

from builds.models import Build
from notifications.tests.mail_servers import FakeSlack, Inbox, free_port, serve_slack, serve_smtp
from notifications.tests.scm_fakes import PR_CONFIG, REPO, GitHubSeen, fake_pull_request_feedback
from pipelines.models import Pipeline
from pipelines.services import Creator, create_pipeline, start_pr_event
from scm.tests.github_fakes import API, SECRET, fake_github
from scm.tests.scm_people import repository_admin


@pytest.fixture
def smtp_port(settings: Any) -> int:
    """The port SD_SMTP_HOST is set to; nothing listens there unless `smtp` starts a server."""
    pytest.importorskip("aiosmtpd", reason="pip install -r requirements-dev.txt (aiosmtpd)")
    port = free_port()
    settings.SD_SMTP_HOST = "127.0.0.1"
    settings.SD_SMTP_PORT = port
    settings.SD_SMTP_TIMEOUT_SECONDS = 2.0
    settings.SD_EMAIL_FROM = "sd@example.com"
    settings.SD_UI_URL = "https://sd.example.com"
    return port


@pytest.fixture
def smtp(smtp_port: int) -> Iterator[Inbox]:
    """A real SMTP server for this test; yields what it received."""
    with serve_smtp(smtp_port, Inbox()) as inbox:
        yield inbox


@pytest.fixture
def slack(settings: Any) -> Iterator[FakeSlack]:
    """Slack's chat.postMessage answered from a thread; yields what it was asked."""
    with serve_slack() as (url, state):
        settings.SD_SLACK_API_URL = url
        settings.SD_SLACK_TOKEN = "xoxb-test"
        yield state


@pytest.fixture
def github(settings: Any) -> Iterator[GitHubSeen]:
    """GitHub's REST API at the HTTP boundary, with comments and statuses kept as GitHub would."""
    settings.SD_GITHUB_WEBHOOK_SECRET = SECRET
    settings.SD_GITHUB_TOKEN = "server-token"
    settings.SD_GITHUB_API_URL = API
    settings.SD_UI_URL = "https://sd.example.com"
    with respx.mock(assert_all_called=False) as router:
        fake_github(router, (REPO,), config=PR_CONFIG)
        # The Slack stand-in is a real server on this machine.
        router.route(host="127.0.0.1").pass_through()
        yield fake_pull_request_feedback(router, REPO)


@pytest.fixture
def github_pipeline(github: GitHubSeen) -> Pipeline:
    """A pipeline of the GitHub repository, made by its admin."""
    return create_pipeline(
        checkout_url=f"https://github.com/{REPO}.git#master", user=repository_admin("octo")
    )


@pytest.fixture
def pr_build(github_pipeline: Pipeline) -> Callable[..., Build]:
    """Start a new event of pull request ``pr_num`` at ``sha``: its PR-<n>:test build, queued."""

    def start(sha: str, pr_num: int = 7) -> Build:
        event = start_pr_event(
            pipeline=github_pipeline,
            pr_num=pr_num,
            sha=sha,
            creator=Creator(name="Mallory", username="mallory"),
            pr={"url": f"https://github.com/{REPO}/pull/{pr_num}", "username": "mallory"},
        )
        assert event is not None
        return Build.objects.select_related("job", "event").get(event=event)

    return start
