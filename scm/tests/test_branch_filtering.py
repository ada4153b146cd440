"""Branch filtering: `~pr:<branch>` and `~commit:<branch>` jobs of a pipeline of another branch.

A real repository served by the fake GitHub (REST API and git over HTTP): the pipeline is on
main, and its jobs ask for pull requests into staging, into release-* and for pushes to staging.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from builds.launch import launch_spec
from builds.models import FINISHED_STATUSES, Build, BuildStatus
from builds.tests.step_logs import step_log
from conftest import GitRepo, Stack, needs_sandbox, run_git, wait_until
from pipelines.models import Event, Job, Pipeline
from pipelines.services import create_pipeline
from scm.models import WebhookDelivery
from scm.tasks import process_delivery
from scm.tests.github_fakes import SECRET, deliver, post_delivery
from scm.tests.github_server import FakeGitHub
from scm.tests.scm_people import repository_admin

# Each test builds branches and pull requests with git: the unit suite's test of the same
# choices is in test_webhooks.py, on a fake API without a repository.
pytestmark = [pytest.mark.slow, pytest.mark.django_db]

FULL_NAME = "octo-org/app"
YAML = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - build: echo main
  test:
    image: buildpack-deps
    requires: [~pr]
    steps:
      - test: echo test
  staging-pr:
    image: buildpack-deps
    requires: [~pr:staging]
    steps:
      - test: echo {who} checks a pull request into staging
  release-pr:
    image: buildpack-deps
    requires: [~pr:/^release-.*$/]
    steps:
      - test: echo release
  staging-commit:
    image: buildpack-deps
    requires: [~commit:staging]
    steps:
      - deploy: echo {who} deploys staging
"""


@pytest.fixture
def repo(
    settings: Any, github_server: tuple[str, FakeGitHub], make_repo: Callable[..., GitRepo]
) -> GitRepo:
    """The repository on the fake GitHub: main, and staging a commit ahead with its own file."""
    base_url, github = github_server
    settings.SD_GITHUB_API_URL = f"{base_url}/api/v3"
    settings.SD_GITHUB_TOKEN = "server-token"
    settings.SD_GITHUB_WEBHOOK_SECRET = SECRET
    settings.SD_RESTRICT_PR = "none"
    settings.SD_CHAIN_PR = False
    repo = make_repo({"screwdriver.yaml": YAML.format(who="main")}, name="app")
    github.repos[FULL_NAME] = repo.bare
    run_git("checkout", "-q", "-b", "staging", cwd=repo.work)
    repo.branch = "staging"
    repo.push({"screwdriver.yaml": YAML.format(who="staging")}, "staging's own file")
    return repo


@pytest.fixture
def pipeline(repo: GitRepo) -> Pipeline:
    return create_pipeline(
        checkout_url=f"https://127.0.0.1/{FULL_NAME}.git#main", user=repository_admin("octocat")
    )


def publish_pr(
    repo: GitRepo, github: FakeGitHub, *, number: int, base: str, files: dict[str, str]
) -> str:
    """Commit `files` on top of `base` and publish them as pull request `number`, as GitHub
    does (only refs/pull/<n>/head holds the commit); return its sha."""
    run_git("checkout", "-q", "--detach", f"origin/{base}", cwd=repo.work)
    sha = repo.commit(files, f"pull request {number}")
    run_git("push", "-q", "origin", f"HEAD:refs/pull/{number}/head", cwd=repo.work)
    github.pull_bases[number] = base
    return sha


def pr_payload(*, number: int, base: str, sha: str) -> dict[str, Any]:
    """GitHub's pull_request delivery for a pull request opened into `base`."""
    return {
        "action": "opened",
        "number": number,
        "pull_request": {
            "number": number,
            "title": f"Into {base}",
            "html_url": f"https://127.0.0.1/{FULL_NAME}/pull/{number}",
            "user": {"login": "octocat"},
            "head": {"sha": sha, "ref": f"change-{number}", "repo": {"full_name": FULL_NAME}},
            "base": {"ref": base, "repo": {"full_name": FULL_NAME}},
        },
        "repository": {"full_name": FULL_NAME, "default_branch": "main"},
        "sender": {"login": "octocat"},
    }


def open_pr(
    repo: GitRepo, github: FakeGitHub, client: Client, *, number: int, base: str, who: str
) -> str:
    """Open a pull request into `base` with its own screwdriver.yaml and deliver it."""
    files = {"screwdriver.yaml": YAML.format(who=who), "pr.txt": f"{number}\n"}
    sha = publish_pr(repo, github, number=number, base=base, files=files)
    payload = pr_payload(number=number, base=base, sha=sha)
    work(deliver(client, "pull_request", payload, delivery=f"pr-{number}"))
    return sha


def work(response: Any) -> WebhookDelivery:
    """Run the worker's task for an accepted delivery, as django-q2 would."""
    assert response.status_code == 202, response.content
    delivery = WebhookDelivery.objects.get(delivery_id=response.json()["deliveryId"])
    process_delivery(delivery.pk)
    delivery.refresh_from_db()
    return delivery


def jobs_of(event: Event) -> list[str]:
    return sorted(build.job.name for build in event.builds.select_related("job"))


def commands(build: Build) -> list[str]:
    return [command["command"] for command in build.job.permutations[0]["commands"]]


def test_a_pr_into_staging_runs_the_staging_pr_job_of_the_main_pipeline_from_its_own_file(
    client: Client, github_server: tuple[str, FakeGitHub], repo: GitRepo, pipeline: Pipeline
) -> None:
    sha = open_pr(repo, github_server[1], client, number=7, base="staging", who="the PR")

    event = Event.objects.get(pipeline=pipeline, pr_num=7)
    assert (event.type, event.start_from, event.sha) == (Event.Type.PR, "~pr:staging", sha)
    assert event.base_branch == "staging"
    assert jobs_of(event) == ["PR-7:staging-pr"]
    build = event.builds.get()
    # The pull request's own screwdriver.yaml, as Screwdriver reads a PR event's config.
    assert commands(build) == ["echo the PR checks a pull request into staging"]
    # Only what the pull request changes against staging, not staging's own commit.
    assert event.meta["commit"]["changedFiles"] == "pr.txt,screwdriver.yaml"
    spec = launch_spec(build)
    assert (spec["checkout"]["branch"], spec["checkout"]["pr"]["number"]) == ("staging", 7)
    assert ["PR_BASE_BRANCH_NAME", "staging"] in spec["environment"]


def test_a_pr_into_main_runs_the_pr_jobs_and_not_the_staging_pr_job(
    client: Client, github_server: tuple[str, FakeGitHub], repo: GitRepo, pipeline: Pipeline
) -> None:
    open_pr(repo, github_server[1], client, number=8, base="main", who="the PR")

    event = Event.objects.get(pipeline=pipeline, pr_num=8)
    assert (event.start_from, event.base_branch) == ("~pr", "main")
    assert jobs_of(event) == ["PR-8:test"]
    assert launch_spec(event.builds.get())["checkout"]["branch"] == "main"


def test_a_pr_into_a_branch_the_regex_matches_runs_its_job_and_one_into_no_asked_branch_none(
    client: Client, github_server: tuple[str, FakeGitHub], repo: GitRepo, pipeline: Pipeline
) -> None:
    run_git("push", "-q", "origin", "origin/main:refs/heads/release-2", cwd=repo.work)
    run_git("push", "-q", "origin", "origin/main:refs/heads/other", cwd=repo.work)
    run_git("fetch", "-q", "origin", cwd=repo.work)
    open_pr(repo, github_server[1], client, number=9, base="release-2", who="the PR")
    open_pr(repo, github_server[1], client, number=10, base="other", who="the PR")

    event = Event.objects.get(pipeline=pipeline)
    assert (event.pr_num, event.start_from) == (9, "~pr:release-2")
    assert jobs_of(event) == ["PR-9:release-pr"]
    assert WebhookDelivery.objects.get(delivery_id="pr-10").events == []


def test_closing_a_pr_into_staging_aborts_and_archives_its_jobs_on_the_main_pipeline(
    client: Client, github_server: tuple[str, FakeGitHub], repo: GitRepo, pipeline: Pipeline
) -> None:
    open_pr(repo, github_server[1], client, number=7, base="staging", who="the PR")
    payload = {
        "action": "closed",
        "number": 7,
        "pull_request": {"number": 7, "base": {"ref": "staging"}},
        "repository": {"full_name": FULL_NAME, "default_branch": "main"},
        "sender": {"login": "octocat"},
    }
    work(deliver(client, "pull_request", payload, delivery="close-7"))

    job = Job.objects.get(pipeline=pipeline, name="PR-7:staging-pr")
    assert job.archived
    assert not job.builds.exclude(status__in=["ABORTED", "SUCCESS", "FAILURE"]).exists()


def test_a_push_to_staging_runs_the_staging_commit_job_with_the_main_branch_file(
    client: Client, repo: GitRepo, pipeline: Pipeline
) -> None:
    sha = repo.push({"app.txt": "staging moves on\n"}, "work on staging")
    payload = {
        "ref": "refs/heads/staging",
        "before": repo.pushes[-2],
        "after": sha,
        "deleted": False,
        "head_commit": {"id": sha, "message": "work on staging"},
        "repository": {"full_name": FULL_NAME, "default_branch": "main"},
        "sender": {"login": "octocat"},
    }
    work(deliver(client, "push", payload, delivery="push-staging"))

    event = Event.objects.get(pipeline=pipeline)
    assert (event.start_from, event.sha, event.base_branch) == ("~commit:staging", sha, "staging")
    assert jobs_of(event) == ["staging-commit"]
    build = event.builds.get()
    # The pipeline's jobs, as its branch head has them, run on staging's commit.
    assert commands(build) == ["echo main deploys staging"]
    spec = launch_spec(build)
    assert (spec["checkout"]["branch"], spec["checkout"]["sha"]) == ("staging", sha)
    assert ["GIT_BRANCH", "staging"] in spec["environment"]


E2E_YAML = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - build: echo main
  staging-pr:
    image: buildpack-deps
    requires: [~pr:staging]
    steps:
      - merged: cat pr.txt staging-later.txt
      - where: echo "$SD_PULL_REQUEST $PR_BASE_BRANCH_NAME $GIT_BRANCH"
      - parents: git log -1 --format=%P
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@needs_sandbox
def test_a_pr_into_staging_builds_on_the_main_pipeline_merged_into_staging(
    github_stack: tuple[Stack, FakeGitHub], make_repo: Callable[..., GitRepo]
) -> None:
    stack, github = github_stack
    repo = make_repo({"screwdriver.yaml": E2E_YAML}, name="app")
    github.repos[FULL_NAME] = repo.bare
    run_git("push", "-q", "origin", "HEAD:refs/heads/staging", cwd=repo.work)
    run_git("fetch", "-q", "origin", cwd=repo.work)
    pipeline = create_pipeline(
        checkout_url=f"https://127.0.0.1/{FULL_NAME}.git#main", user=repository_admin("octocat")
    )
    pr_sha = publish_pr(repo, github, number=5, base="staging", files={"pr.txt": "from the PR\n"})
    # Staging moves on after the pull request branched off it: the build merges it in.
    run_git("checkout", "-q", "-B", "staging", "origin/staging", cwd=repo.work)
    repo.branch = "staging"
    staging_sha = repo.push({"staging-later.txt": "landed on staging\n"}, "staging moves on")

    payload = pr_payload(number=5, base="staging", sha=pr_sha)
    response = post_delivery(stack.url, "pull_request", payload, delivery="e2e-staging")
    assert response.status_code == 202, response.text

    def finished() -> Build | None:
        build = Build.objects.filter(job__name="PR-5:staging-pr").select_related("event").first()
        return build if build and build.status in FINISHED_STATUSES else None

    build = wait_until(finished, timeout=90, what="the PR build to finish")
    setup = "\n".join(step_log(build, "sd-setup-scm"))
    assert build.status == BuildStatus.SUCCESS, setup
    assert (build.event.pipeline_id, build.event.start_from) == (pipeline.pk, "~pr:staging")
    assert step_log(build, "merged") == ["from the PR", "landed on staging"]
    assert step_log(build, "where") == ["5 staging origin/refs/pull/5/head:pr"]
    assert step_log(build, "parents") == [f"{pr_sha} {staging_sha}"]
