"""Pull request comments and extra commit statuses (meta.summary, meta.status.*) through the
GitHub and GitLab clients, answered at the HTTP boundary by respx; local git has neither."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from scm.base import CommitCheck, ScmError
from scm.github import GitHubScm
from scm.gitlab import GitLabScm
from scm.local import LocalGitScm

SHA = "a" * 40
GITHUB = "https://api.github.com/repos/org/app"
GITLAB = "https://gitlab.com/api/v4/projects/group%2Fapp"
CHECK = CommitCheck(
    context="Screwdriver/3/lint",
    state="FAILURE",
    description="3 issues found.",
    target_url="https://sd.example.com/pipelines/3/builds/9",
)


@pytest.fixture
def router(settings: Any) -> Iterator[respx.Router]:
    settings.SD_GITHUB_API_URL = "https://api.github.com"
    settings.SD_GITHUB_TOKEN = "server-token"
    settings.SD_GITLAB_URL = "https://gitlab.com"
    settings.SD_GITLAB_TOKEN = "server-token"
    with respx.mock(assert_all_called=False) as mock:
        yield mock


def sent(route: respx.Route) -> list[dict[str, Any]]:
    return [json.loads(call.request.content) for call in route.calls]


def test_github_posts_a_comment_then_edits_it_and_posts_anew_once_it_was_deleted(
    router: respx.Router,
) -> None:
    scm = GitHubScm()
    ref = scm.parse_url("https://github.com/org/app.git#main")
    post = router.post(f"{GITHUB}/issues/7/comments").mock(
        return_value=httpx.Response(201, json={"id": 41})
    )
    edit = router.patch(f"{GITHUB}/issues/comments/41").mock(
        return_value=httpx.Response(200, json={"id": 41})
    )

    assert scm.write_pr_comment(ref, 7, "first", comment_id="") == "41"
    assert scm.write_pr_comment(ref, 7, "second", comment_id="41") == "41"
    assert (sent(post), sent(edit)) == ([{"body": "first"}], [{"body": "second"}])

    edit.mock(return_value=httpx.Response(404, json={"message": "Not Found"}))
    post.mock(return_value=httpx.Response(201, json={"id": 42}))
    assert scm.write_pr_comment(ref, 7, "third", comment_id="41") == "42"

    edit.mock(return_value=httpx.Response(403, json={"message": "Forbidden"}))
    with pytest.raises(ScmError, match="GitHub refused to edit comment 41 \\(403\\)"):
        scm.write_pr_comment(ref, 7, "fourth", comment_id="41")


def test_github_posts_a_check_as_a_commit_status_of_its_own_context(
    router: respx.Router,
) -> None:
    scm = GitHubScm()
    status = router.post(f"{GITHUB}/statuses/{SHA}").mock(return_value=httpx.Response(201))
    assert scm.post_check(scm.parse_url("https://github.com/org/app.git#main"), SHA, CHECK)
    assert sent(status) == [
        {
            "state": "failure",
            "context": "Screwdriver/3/lint",
            "description": "3 issues found.",
            "target_url": "https://sd.example.com/pipelines/3/builds/9",
        }
    ]


def test_gitlab_writes_merge_request_notes_and_statuses(router: respx.Router) -> None:
    scm = GitLabScm()
    ref = scm.parse_url("https://gitlab.com/group/app.git#main")
    post = router.route(method="POST", url__regex=f"^{GITLAB}/merge_requests/5/notes$").mock(
        return_value=httpx.Response(201, json={"id": 900})
    )
    edit = router.route(method="PUT", url__regex=f"^{GITLAB}/merge_requests/5/notes/900$").mock(
        return_value=httpx.Response(200, json={"id": 900})
    )
    status = router.route(method="POST", url__regex=f"^{GITLAB}/statuses/{SHA}$").mock(
        return_value=httpx.Response(201, json={})
    )

    assert scm.write_pr_comment(ref, 5, "summary", comment_id="") == "900"
    assert scm.write_pr_comment(ref, 5, "summary again", comment_id="900") == "900"
    assert scm.post_check(ref, SHA, CHECK)
    assert (sent(post), sent(edit)) == ([{"body": "summary"}], [{"body": "summary again"}])
    assert sent(status) == [
        {
            "state": "failed",
            "name": "Screwdriver/3/lint",
            "description": "3 issues found.",
            "target_url": "https://sd.example.com/pipelines/3/builds/9",
        }
    ]


def test_local_git_has_no_comments_or_statuses(tmp_path: Any) -> None:
    scm = LocalGitScm()
    ref = scm.stored_ref(f"file://{tmp_path}/repo.git#main")
    assert scm.write_pr_comment(ref, 1, "x", comment_id="") == ""
    assert scm.post_check(ref, SHA, CHECK) is False
