"""A signed GitHub delivery to a real build: a fake GitHub Enterprise serves the REST API and
the repository over git's HTTP protocol, so the launcher really clones and merges a PR."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from builds.models import FINISHED_STATUSES, Build, BuildStatus
from builds.tests.step_logs import step_log
from conftest import GitRepo, Stack, needs_sandbox, run_git, wait_until
from pipelines.models import Event
from pipelines.services import create_pipeline
from scm.github import GitHubScm, clone_base, full_name_of
from scm.models import WebhookDelivery
from scm.tests.github_fakes import SECRET, post_delivery
from scm.tests.github_server import FakeGitHub
from scm.tests.scm_people import repository_admin

ORG = "octo-org"


def test_an_enterprise_server_on_plain_http_is_cloned_from_its_own_host_and_port(
    settings: Any,
) -> None:
    settings.SD_GITHUB_API_URL = "http://127.0.0.1:8123/api/v3"
    ref = GitHubScm().parse_url("https://127.0.0.1/octo-org/app.git#main")
    assert ref.repo_path == "http://127.0.0.1:8123/octo-org/app.git"
    assert full_name_of(ref) == "octo-org/app"
    assert ref.checkout_url == "https://127.0.0.1/octo-org/app.git#main"
    settings.SD_GITHUB_API_URL = "https://ghe.example.com/api/v3"
    assert clone_base() == "https://ghe.example.com"
    settings.SD_GITHUB_API_URL = "https://api.github.com"
    assert GitHubScm().parse_url("https://github.com/o/r.git#main").repo_path == (
        "https://github.com/o/r.git"
    )


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
      - merged: cat feature.txt main-only.txt
      - where: echo "$SD_PULL_REQUEST $SD_BUILD_SHA $GIT_BRANCH"
      - parents: git log -1 --format=%P
"""


def _pr_payload(*, number: int, sha: str, full_name: str) -> dict[str, Any]:
    return {
        "action": "opened",
        "number": number,
        "pull_request": {
            "number": number,
            "title": "Add a feature",
            "html_url": f"https://127.0.0.1/{full_name}/pull/{number}",
            "head": {"sha": sha, "ref": "feature", "repo": {"full_name": full_name}},
            "base": {"ref": "main", "repo": {"full_name": full_name}},
        },
        "repository": {"full_name": full_name, "default_branch": "main"},
        "sender": {"login": "octocat"},
    }


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@needs_sandbox
def test_a_signed_pull_request_delivery_runs_a_real_build_on_the_merge_and_posts_statuses(
    github_stack: tuple[Stack, FakeGitHub], make_repo: Callable[..., GitRepo]
) -> None:
    stack, github = github_stack
    base_url = stack.env["SD_GITHUB_API_URL"].removesuffix("/api/v3")
    repo = make_repo({"screwdriver.yaml": YAML, "shared.txt": "shared\n"}, name="app")
    full_name = f"{ORG}/app"
    github.repos[full_name] = repo.bare
    # The pull request: a commit only refs/pull/5/head holds, as on GitHub; then main moves on.
    pr_sha = repo.commit({"feature.txt": "from the pull request\n"}, "add a feature")
    run_git("push", "-q", "origin", "HEAD:refs/pull/5/head", cwd=repo.work)
    run_git("reset", "-q", "--hard", "HEAD~1", cwd=repo.work)
    base_sha = repo.push({"main-only.txt": "landed on main\n"}, "main moves on")

    user = repository_admin("octocat")
    pipeline = create_pipeline(checkout_url=f"https://127.0.0.1/{full_name}.git#main", user=user)
    assert pipeline.hook_installed and github.hooks[0]["config"]["secret"] == SECRET

    payload = _pr_payload(number=5, sha=pr_sha, full_name=full_name)
    response = post_delivery(stack.url, "pull_request", payload, delivery="e2e-1")
    assert response.status_code == 202, response.text

    def finished() -> Build | None:
        build = Build.objects.filter(job__name="PR-5:test").select_related("event").first()
        return build if build and build.status in FINISHED_STATUSES else None

    build = wait_until(finished, timeout=90, what="the PR build to finish")
    setup = "\n".join(step_log(build, "sd-setup-scm"))
    assert build.status == BuildStatus.SUCCESS, setup
    assert (build.event.type, build.event.pr_num, build.sha) == (Event.Type.PR, 5, pr_sha)
    # The pull request's own diff against main, not what main gained since.
    assert build.event.meta["commit"]["changedFiles"] == "feature.txt"
    assert step_log(build, "merged") == ["from the pull request", "landed on main"]
    assert step_log(build, "where") == [f"5 {pr_sha} origin/refs/pull/5/head:pr"]
    assert step_log(build, "parents") == [f"{pr_sha} {base_sha}"]
    # Cloned over HTTP from the fake server, not from the disk.
    assert "info/refs" in github.git_files
    # Shallow by default, as Screwdriver's checkout: 50 commits of every branch.
    clone = "$ git clone --no-checkout --depth 50 --no-single-branch --branch main --"
    assert f"{clone} {base_url}/{full_name}.git" in setup

    delivery = WebhookDelivery.objects.get(delivery_id="e2e-1")
    assert (delivery.outcome, delivery.events) == (WebhookDelivery.Outcome.DONE, [build.event_id])

    context = f"Screwdriver/{pipeline.pk}/PR-5:test"

    def states() -> list[str] | None:
        with github.lock:
            seen = [body["state"] for sha, body in github.statuses if sha == pr_sha]
        return seen if seen and seen[-1] == "success" else None

    seen = wait_until(states, timeout=30, what="the success status")
    assert seen[0] == "pending" and set(seen[:-1]) == {"pending"}
    with github.lock:
        posted = [body for sha, body in github.statuses if sha == pr_sha]
    assert {body["context"] for body in posted} == {context}
    # A queued status still waiting when the build starts gives way to the running one.
    assert posted[0]["description"] in {"The build is queued.", "The build is running."}
    assert posted[-1]["target_url"].endswith(f"/pipelines/{pipeline.pk}/builds/{build.pk}")
    assert github.unknown == []
