"""restrictPR decides which pull requests build; chainPR runs the jobs after the ~pr jobs too."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import respx
from django.contrib.auth import get_user_model
from django.test import Client

from builds import services as build_services
from builds.models import FINISHED_STATUSES, Build, BuildStatus
from builds.tests.step_logs import step_log
from conftest import GitRepo, needs_sandbox, run_git, wait_until
from pipelines.models import Event, Pipeline
from pipelines.services import Creator, create_pipeline, start_pr_event
from scm.models import WebhookDelivery
from scm.tasks import process_delivery
from scm.tests.github_fakes import SECRET, deliver, fake_github
from scm.tests.scm_people import repository_admin

PR_SHA = "e" * 40
REPO = "Codertocat/Hello-World"


def config(annotations: str = "") -> bytes:
    return f"""
{annotations}
jobs:
  main:
    image: node:20
    requires: [~commit]
    steps:
      - build: echo main
  first:
    image: node:20
    requires: [~pr]
    steps:
      - test: echo first
  second:
    image: node:20
    requires: [first]
    steps:
      - more: echo second
""".encode()


@pytest.fixture
def github(settings: Any) -> Iterator[Callable[[bytes], Pipeline]]:
    """GitHub answered by respx; returns a maker of a pipeline whose file is the given one."""
    settings.SD_GITHUB_WEBHOOK_SECRET = SECRET
    settings.SD_GITHUB_TOKEN = "server-token"
    settings.SD_GITHUB_API_URL = "https://api.github.com"
    settings.SD_RESTRICT_PR = "none"
    settings.SD_CHAIN_PR = False
    with respx.mock(assert_all_called=False) as router:

        def make(yaml: bytes) -> Pipeline:
            fake_github(router, (REPO,), config=yaml)
            user = repository_admin("octo")
            return create_pipeline(checkout_url=f"https://github.com/{REPO}.git#master", user=user)

        yield make


def pull_request(*, fork: bool, number: int = 7) -> dict[str, Any]:
    head_repo = "mallory/Hello-World" if fork else REPO
    return {
        "action": "opened",
        "number": number,
        "pull_request": {
            "number": number,
            "title": "Change things",
            "html_url": f"https://github.com/{REPO}/pull/{number}",
            "head": {"sha": PR_SHA, "ref": "patch", "repo": {"full_name": head_repo}},
            "base": {"ref": "master", "repo": {"full_name": REPO}},
        },
        "repository": {"full_name": REPO, "default_branch": "master"},
        "sender": {"login": "mallory"},
    }


def work(client: Client, payload: dict[str, Any], delivery: str = "d-1") -> WebhookDelivery:
    response = deliver(client, "pull_request", payload, delivery=delivery)
    assert response.status_code == 202, response.content
    row = WebhookDelivery.objects.get(delivery_id=delivery)
    process_delivery(row.pk)
    row.refresh_from_db()
    return row


@pytest.mark.django_db
def test_a_fork_pull_request_on_a_fork_restricted_pipeline_builds_nothing_and_says_why(
    client: Client, github: Callable[[bytes], Pipeline]
) -> None:
    pipeline = github(config("annotations:\n  screwdriver.cd/restrictPR: fork"))
    delivery = work(client, pull_request(fork=True))
    assert delivery.outcome == WebhookDelivery.Outcome.DONE and delivery.events == []
    assert delivery.message == (
        f"Pipeline {pipeline.pk} does not build pull requests from a fork (restrictPR is fork); "
        "nothing was built. To build them, change screwdriver.cd/restrictPR in the pipeline's "
        "screwdriver.yaml."
    )
    assert not Build.objects.exists()


@pytest.mark.django_db
def test_a_branch_pull_request_still_builds_where_only_forks_are_restricted(
    client: Client, github: Callable[[bytes], Pipeline]
) -> None:
    github(config("annotations:\n  screwdriver.cd/restrictPR: fork"))
    delivery = work(client, pull_request(fork=False))
    assert delivery.message == ""
    assert [b.job.name for b in Build.objects.select_related("job")] == ["PR-7:first"]


@pytest.mark.parametrize(
    ("server", "annotation", "fork", "builds"),
    [
        ("none", "branch", False, False),  # branch restricts PRs from the same repository
        ("none", "branch", True, True),
        ("none", "all", True, False),
        ("all", "", False, False),  # the server's default applies without an annotation
        ("all", "none", True, True),  # ...and a pipeline's annotation wins over it
        ("fork-admin", "none", True, False),  # an -admin server setting wins over the pipeline
        ("none-admin", "all", True, True),
        ("none", "sometimes", True, True),  # an unknown value restricts nothing
    ],
)
@pytest.mark.django_db
def test_restrict_pr_follows_screwdrivers_rules(
    client: Client,
    github: Callable[[bytes], Pipeline],
    settings: Any,
    server: str,
    annotation: str,
    fork: bool,
    builds: bool,
) -> None:
    settings.SD_RESTRICT_PR = server
    annotations = f"annotations:\n  screwdriver.cd/restrictPR: {annotation}" if annotation else ""
    github(config(annotations))
    delivery = work(client, pull_request(fork=fork))
    assert Build.objects.exists() is builds
    assert ("does not build pull requests" in delivery.message) is not builds


@pytest.mark.django_db
def test_a_synchronize_of_a_restricted_pull_request_still_stops_its_earlier_builds(
    client: Client, github: Callable[[bytes], Pipeline], settings: Any
) -> None:
    github(config())
    work(client, pull_request(fork=True))
    settings.SD_RESTRICT_PR = "fork-admin"
    work(client, {**pull_request(fork=True), "action": "synchronize"}, delivery="d-2")
    assert [b.status for b in Build.objects.all()] == [BuildStatus.ABORTED]


def finish(build: Build) -> None:
    build_services.mark_running(build_id=build.pk)
    build_services.finish_build(build_id=build.pk, status=BuildStatus.SUCCESS)


@pytest.mark.django_db
def test_without_chain_pr_a_pr_event_runs_only_its_pr_jobs(
    client: Client, github: Callable[[bytes], Pipeline]
) -> None:
    github(config())
    work(client, pull_request(fork=False))
    finish(Build.objects.get())
    assert [b.job.name for b in Build.objects.select_related("job")] == ["PR-7:first"]


@pytest.mark.django_db
def test_with_chain_pr_the_next_job_runs_as_a_pr_job_after_the_first(
    client: Client, github: Callable[[bytes], Pipeline]
) -> None:
    github(config("annotations:\n  screwdriver.cd/chainPR: true"))
    work(client, pull_request(fork=False))
    event = Event.objects.get()
    assert set(event.job_configs) == {"PR-7:first", "PR-7:second"}
    assert {"src": "PR-7:first", "dest": "PR-7:second"} in [
        {"src": e["src"], "dest": e["dest"]} for e in event.workflow_graph["edges"]
    ]
    assert {"src": "~pr", "dest": "PR-7:first"} in [
        {"src": e["src"], "dest": e["dest"]} for e in event.workflow_graph["edges"]
    ]
    finish(Build.objects.get())
    second = Build.objects.select_related("job", "event").get(job__name="PR-7:second")
    assert (second.event_id, second.status, second.sha) == (event.pk, BuildStatus.QUEUED, PR_SHA)


@pytest.mark.django_db
def test_the_server_default_chains_and_a_pipeline_can_turn_it_off(
    client: Client, github: Callable[[bytes], Pipeline], settings: Any
) -> None:
    settings.SD_CHAIN_PR = True
    github(config("annotations:\n  screwdriver.cd/chainPR: false"))
    work(client, pull_request(fork=False))
    assert set(Event.objects.get().job_configs) == {"PR-7:first"}


CHAINED = """
annotations:
  screwdriver.cd/chainPR: true
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - build: echo main
  first:
    image: buildpack-deps
    requires: [~pr]
    steps:
      - test: echo "first of PR $SD_PULL_REQUEST"
  second:
    image: buildpack-deps
    requires: [first]
    steps:
      - show: echo "$SD_JOB_NAME sees $(cat pr.txt) and $(cat later.txt)"
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@needs_sandbox
def test_chain_pr_runs_the_second_job_as_a_real_pr_build(
    stack: Any, make_repo: Callable[..., GitRepo]
) -> None:
    repo = make_repo({"screwdriver.yaml": CHAINED})
    user = get_user_model().objects.create_user("alice")
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=user)
    # The PR's branch, then main moving on: the build must see both sides of the merge.
    repo.branch = "feature"
    pr_sha = repo.push({"pr.txt": "the PR's file"}, "PR change")
    run_git("checkout", "-q", "-b", "later", "HEAD~1", cwd=repo.work)
    repo.branch = "main"
    repo.push({"later.txt": "main's newer file"}, "main moves on")
    event = start_pr_event(
        pipeline=pipeline,
        pr_num=3,
        sha=pr_sha,
        creator=Creator(name="a", username="alice"),
        pr={"title": "t", "url": "", "ref": "feature", "fork": False},
    )
    assert event is not None

    def second() -> Build | None:
        build = Build.objects.filter(event=event, job__name="PR-3:second").first()
        return build if build and build.status in FINISHED_STATUSES else None

    done = wait_until(second, timeout=90, what="PR-3:second to finish")
    assert done.status == BuildStatus.SUCCESS
    assert step_log(done, "show") == ["PR-3:second sees the PR's file and main's newer file"]
    first = Build.objects.get(event=event, job__name="PR-3:first")
    assert (first.status, done.parent_build_id) == (BuildStatus.SUCCESS, first.pk)
