"""A pull request on a subscribed repository starts `~subscribe` where the subscription lists
`~pr`, as in Screwdriver: a commit-like event of the subscriber at its own branch head, not a
PR event, recording the pull request's head as subscribedConfigSha and its page as
subscribedSourceUrl."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from builds.models import FINISHED_STATUSES, Build, BuildStatus
from builds.tests.step_logs import step_log
from conftest import GitRepo, Stack, wait_until
from pipelines.models import Event, Pipeline
from pipelines.services import create_pipeline
from scm.models import WebhookDelivery
from scm.tasks import process_delivery
from scm.tests.github_fakes import SECRET, deliver, post_delivery
from scm.tests.github_server import FakeGitHub

MakeRepo = Callable[..., GitRepo]
LIB = "octo-org/lib"

SUBSCRIBER = """
subscribe:
  scmUrls:
    - git@{host}:octo-org/lib.git#main: {actions}
jobs:
  main:
    image: alpine
    requires: [~commit, ~pr]
    steps:
      - main: echo main
  watch:
    image: alpine
    requires: [~subscribe]
    steps:
      - watch: echo "watched $SD_PIPELINE_ID"
      - head: git rev-parse HEAD
"""


def subscriber_yaml(actions: str, *, host: str = "github.com", restrict: str = "") -> str:
    yaml = SUBSCRIBER.format(host=host, actions=actions)
    if restrict:
        yaml = f"annotations:\n  screwdriver.cd/restrictPR: {restrict}\n{yaml}"
    return yaml


def pr_payload(*, number: int, base: str, sha: str, fork: bool = False) -> dict[str, Any]:
    head_repo = "stranger/lib" if fork else LIB
    return {
        "action": "opened",
        "number": number,
        "pull_request": {
            "number": number,
            "title": "Change the library",
            "html_url": f"https://github.com/{LIB}/pull/{number}",
            "user": {"login": "octocat"},
            "head": {"sha": sha, "ref": "change", "repo": {"full_name": head_repo}},
            "base": {"ref": base, "repo": {"full_name": LIB}},
        },
        "repository": {"full_name": LIB, "default_branch": "main"},
        "sender": {"login": "octocat"},
    }


@pytest.fixture
def webhooks_on(settings: Any) -> None:
    settings.SD_GITHUB_WEBHOOK_SECRET = SECRET
    settings.SD_RESTRICT_PR = "none"
    # Installed hooks post to SD_API_URL; a closed port keeps pushes from reaching any server.
    settings.SD_API_URL = "http://127.0.0.1:9"


def work(response: Any) -> WebhookDelivery:
    """Run the worker's task for an accepted delivery, as django-q2 would."""
    assert response.status_code == 202, response.content
    delivery = WebhookDelivery.objects.get(delivery_id=response.json()["deliveryId"])
    process_delivery(delivery.pk)
    delivery.refresh_from_db()
    return delivery


def subscriber(make_repo: MakeRepo, owner: Any, yaml: str) -> tuple[GitRepo, Pipeline]:
    repo = make_repo({"screwdriver.yaml": yaml}, name="subscriber")
    return repo, create_pipeline(checkout_url=repo.checkout_url, user=owner)


@pytest.mark.django_db
def test_a_pull_request_on_a_subscribed_repository_starts_the_subscribers_subscribe_jobs(
    webhooks_on: None, make_repo: MakeRepo, owner: Any, client: Client
) -> None:
    repo, pipeline = subscriber(make_repo, owner, subscriber_yaml("['~pr']"))
    assert pipeline.subscribed_scm_urls == [
        {"scmUri": "github:github.com:octo-org/lib:main", "actions": ["pr"]}
    ]
    pr_sha = "d" * 40

    delivery = work(
        deliver(
            client, "pull_request", pr_payload(number=7, base="main", sha=pr_sha), delivery="pr-7"
        )
    )

    event = Event.objects.get(pipeline=pipeline)
    assert delivery.events == [event.pk]
    # A commit-like event of the subscriber at its own head, as Screwdriver mimics one.
    assert (event.type, event.pr_num, event.start_from) == (Event.Type.PIPELINE, None, "~subscribe")
    assert event.sha == repo.pushes[-1]
    assert event.subscribed_event and event.subscribed_config_sha == pr_sha
    assert event.subscribed_source_url == f"https://github.com/{LIB}/pull/7"
    assert [b.job.name for b in Build.objects.filter(event=event)] == ["watch"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("actions", "base", "restrict", "fork"),
    [
        ("['~commit']", "main", "", False),  # the subscription does not ask for pull requests
        ("['~pr']", "other", "", False),  # a pull request into another branch
        ("['~pr', '~commit']", "main", "fork", True),  # the subscriber refuses forks' requests
    ],
    ids=["commit-only", "other-branch", "restricted-fork"],
)
def test_a_pull_request_the_subscription_does_not_cover_starts_nothing(
    webhooks_on: None,
    make_repo: MakeRepo,
    owner: Any,
    client: Client,
    actions: str,
    base: str,
    restrict: str,
    fork: bool,
) -> None:
    subscriber(make_repo, owner, subscriber_yaml(actions, restrict=restrict))
    payload = pr_payload(number=8, base=base, sha="e" * 40, fork=fork)

    delivery = work(deliver(client, "pull_request", payload, delivery="pr-8"))

    assert delivery.events == []
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_the_same_subscriber_in_an_unrestricted_pipeline_builds_a_forks_pull_request(
    webhooks_on: None, make_repo: MakeRepo, owner: Any, client: Client
) -> None:
    # The control of the restricted case above: only restrictPR kept it from starting.
    _, pipeline = subscriber(make_repo, owner, subscriber_yaml("['~pr', '~commit']"))
    payload = pr_payload(number=9, base="main", sha="f" * 40, fork=True)

    work(deliver(client, "pull_request", payload, delivery="pr-9"))

    assert Event.objects.get(pipeline=pipeline).start_from == "~subscribe"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_signed_pull_request_delivery_runs_the_subscribers_build_at_its_own_head(
    github_stack: tuple[Stack, FakeGitHub], make_repo: MakeRepo, owner: Any
) -> None:
    stack, _ = github_stack
    repo, pipeline = subscriber(make_repo, owner, subscriber_yaml("['~pr']", host="127.0.0.1"))
    assert pipeline.subscribed_scm_urls[0]["actions"] == ["pr"]
    pr_sha = "a1" * 20

    response = post_delivery(
        stack.url, "pull_request", pr_payload(number=3, base="main", sha=pr_sha), delivery="e2e-3"
    )
    assert response.status_code == 202, response.text

    def finished() -> Build | None:
        build = Build.objects.filter(job__pipeline=pipeline).select_related("event").first()
        return build if build and build.status in FINISHED_STATUSES else None

    build = wait_until(finished, timeout=90, what="the subscriber's build to finish")
    assert build.status == BuildStatus.SUCCESS, step_log(build, "sd-setup-scm")
    assert build.job.name == "watch"
    assert build.event.subscribed_config_sha == pr_sha
    assert step_log(build, "watch") == [f"watched {pipeline.pk}"]
    # The subscriber's own commit is checked out, never the pull request's.
    assert step_log(build, "head") == [repo.pushes[-1]]
