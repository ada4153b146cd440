"""A real pull request build that runs `meta set summary "..."` and
`meta set status.lint '{...}'` (the short forms; `meta.summary.KEY` and `meta.status.NAME` are
read too): one comment on the pull request, edited by the build of its next push, and one
extra commit status each time.

A fake GitHub Enterprise (a thread of the test) serves the REST API and the repository; the
server, its worker and the launcher run as they do in production.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from builds.models import FINISHED_STATUSES, Build, BuildStatus
from builds.tests.step_logs import step_log
from conftest import GitRepo, Stack, needs_sandbox, run_git, wait_until
from pipelines.services import create_pipeline
from scm.tests.github_fakes import post_delivery
from scm.tests.github_server import FakeGitHub
from scm.tests.scm_people import repository_admin

ORG = "octo-org"

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
      - report: |
          meta set summary "Coverage is $(cat coverage.txt)"
          meta set status.lint '{"status":"SUCCESS","message":"No lint issues."}'
"""


def _payload(*, action: str, sha: str, full_name: str) -> dict[str, Any]:
    return {
        "action": action,
        "number": 5,
        "pull_request": {
            "number": 5,
            "title": "Raise the coverage",
            "html_url": f"https://127.0.0.1/{full_name}/pull/5",
            "head": {"sha": sha, "ref": "feature", "repo": {"full_name": full_name}},
            "base": {"ref": "main", "repo": {"full_name": full_name}},
        },
        "repository": {"full_name": full_name, "default_branch": "main"},
        "sender": {"login": "octocat"},
    }


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@needs_sandbox
def test_a_pr_builds_summary_is_one_comment_that_its_next_push_edits(
    github_stack: tuple[Stack, FakeGitHub], make_repo: Callable[..., GitRepo]
) -> None:
    stack, github = github_stack
    repo = make_repo({"screwdriver.yaml": YAML, "coverage.txt": "70%\n"}, name="app")
    full_name = f"{ORG}/app"
    github.repos[full_name] = repo.bare
    pipeline = create_pipeline(
        checkout_url=f"https://127.0.0.1/{full_name}.git#main", user=repository_admin("octocat")
    )
    lint = f"Screwdriver/{pipeline.pk}/lint"
    own = f"Screwdriver/{pipeline.pk}/PR-5:test"

    def push_to_pr(coverage: str) -> str:
        sha = repo.commit({"coverage.txt": f"{coverage}\n"}, f"coverage {coverage}")
        run_git("push", "-q", "-f", "origin", "HEAD:refs/pull/5/head", cwd=repo.work)
        run_git("update-server-info", cwd=repo.bare)
        return sha

    def fed_back(sha: str) -> Callable[[], Build | None]:
        def check() -> Build | None:
            build = (
                Build.objects.filter(job__name="PR-5:test", sha=sha).select_related("event").first()
            )
            if build is None or build.status not in FINISHED_STATUSES:
                return None
            with github.lock:
                checked = any(s == sha and body["context"] == lint for s, body in github.statuses)
                commented = any(f"[#{build.pk}]" in body for _, body in github.comments.values())
            return build if checked and commented else None

        return check

    first_sha = push_to_pr("81%")
    response = post_delivery(
        stack.url,
        "pull_request",
        _payload(action="opened", sha=first_sha, full_name=full_name),
        delivery="feedback-1",
    )
    assert response.status_code == 202, response.text
    first = wait_until(fed_back(first_sha), timeout=90, what="the first PR build's feedback")
    assert first.status == BuildStatus.SUCCESS, step_log(first, "report")

    with github.lock:
        assert github.comment_writes == [("POST", 1)]
        pr_num, body = github.comments[1]
        checks = [
            (b["context"], b["state"], b["description"])
            for s, b in github.statuses
            if s == first_sha and b["context"] != own
        ]
    assert pr_num == 5
    assert body.startswith(f"### SD Build [#{first.pk}](")
    assert "\n- - - -\nCoverage is 81%\n\n###### ~" in body
    assert checks == [(lint, "success", "No lint issues.")]

    second_sha = push_to_pr("90%")
    response = post_delivery(
        stack.url,
        "pull_request",
        _payload(action="synchronize", sha=second_sha, full_name=full_name),
        delivery="feedback-2",
    )
    assert response.status_code == 202, response.text
    second = wait_until(fed_back(second_sha), timeout=90, what="the second PR build's feedback")

    with github.lock:
        assert github.comment_writes == [("POST", 1), ("PATCH", 1)]
        assert list(github.comments) == [1]
        body = github.comments[1][1]
        extra = [
            b["context"] for s, b in github.statuses if s == second_sha and b["context"] != own
        ]
    assert f"[#{second.pk}]" in body and "\nCoverage is 90%\n" in body
    assert extra == [lint]
    assert github.unknown == []
