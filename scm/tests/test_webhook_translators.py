"""GitHub's and GitLab's payloads become the same SCM-neutral actions (no database, no HTTP)."""

from __future__ import annotations

from scm.github import repo_prefix as github_prefix
from scm.gitlab import repo_prefix as gitlab_prefix
from scm.webhooks.actions import (
    PullRequestClosed,
    PullRequestUpdated,
    Push,
    RefCreated,
    Repository,
)
from scm.webhooks.github import GITHUB_TRANSLATORS
from scm.webhooks.gitlab import GITLAB_TRANSLATORS, MERGE_REQUEST_HOOK, PUSH_HOOK, TAG_PUSH_HOOK

SHA = "a" * 40


def test_a_github_push_and_a_gitlab_push_become_the_same_push() -> None:
    commits = [{"id": SHA, "message": "m", "added": ["b.py"], "modified": ["a.py"]}]
    github = GITHUB_TRANSLATORS[("push", "")](
        {
            "ref": "refs/heads/main",
            "after": SHA,
            "head_commit": {"message": "m"},
            "commits": commits,
            "repository": {"full_name": "Org/Repo"},
            "sender": {"login": "octo"},
        }
    )
    gitlab = GITLAB_TRANSLATORS[(PUSH_HOOK, "")](
        {
            "ref": "refs/heads/main",
            "checkout_sha": SHA,
            "after": SHA,
            "commits": commits,
            "total_commits_count": 1,
            "project": {"path_with_namespace": "org/repo"},
            "user_username": "octo",
        }
    )
    assert github == Push(
        repository=Repository(scm="github", uri_prefix=github_prefix("Org/Repo")),
        branch="main",
        sha=SHA,
        pusher="octo",
        changed_files=["a.py", "b.py"],
    )
    assert isinstance(gitlab, Push)
    assert (gitlab.branch, gitlab.sha, gitlab.pusher, gitlab.changed_files) == (
        "main",
        SHA,
        "octo",
        ["a.py", "b.py"],
    )
    assert gitlab.repository == Repository(scm="gitlab", uri_prefix=gitlab_prefix("org/repo"))


def test_a_gitlab_push_with_commits_left_out_has_unknown_changed_files() -> None:
    push = GITLAB_TRANSLATORS[(PUSH_HOOK, "")](
        {
            "ref": "refs/heads/main",
            "checkout_sha": SHA,
            "commits": [{"id": SHA, "added": ["a.py"]}],
            "total_commits_count": 25,
            "project": {"path_with_namespace": "org/repo"},
        }
    )
    assert isinstance(push, Push)
    assert push.changed_files is None
    assert push.pusher == "gitlab"


def test_a_skip_ci_push_or_a_deleted_branch_asks_for_nothing() -> None:
    translate = GITHUB_TRANSLATORS[("push", "")]
    repository = {"full_name": "org/repo"}
    skipped = {
        "ref": "refs/heads/main",
        "after": SHA,
        "head_commit": {"message": "docs [skip ci]"},
        "repository": repository,
    }
    deleted = {"ref": "refs/heads/old", "after": "0" * 40, "repository": repository}
    assert translate(skipped) is None
    assert translate(deleted) is None


def test_a_github_tag_leaves_its_commit_to_be_looked_up_and_a_gitlab_tag_carries_it() -> None:
    github = GITHUB_TRANSLATORS[("create", "")](
        {
            "ref_type": "tag",
            "ref": "v1",
            "repository": {"full_name": "org/repo", "default_branch": "main"},
        }
    )
    gitlab = GITLAB_TRANSLATORS[(TAG_PUSH_HOOK, "")](
        {
            "ref": "refs/tags/v1",
            "checkout_sha": SHA,
            "project": {"path_with_namespace": "org/repo", "default_branch": "main"},
        }
    )
    assert isinstance(github, RefCreated)
    assert isinstance(gitlab, RefCreated)
    assert (github.kind, github.name, github.sha, github.default_branch) == (
        "tag",
        "v1",
        "",
        "main",
    )
    assert (gitlab.kind, gitlab.name, gitlab.sha, gitlab.default_branch) == (
        "tag",
        "v1",
        SHA,
        "main",
    )


def test_a_github_branch_creation_is_no_tag() -> None:
    translate = GITHUB_TRANSLATORS[("create", "")]
    assert translate({"ref_type": "branch", "ref": "x", "repository": {"full_name": "o/r"}}) is None


def test_only_the_opening_of_a_merge_request_names_its_author() -> None:
    def merge_request(action: str) -> dict[str, object]:
        return {
            "project": {"path_with_namespace": "org/repo"},
            "user": {"username": "pusher"},
            "object_attributes": {
                "action": action,
                "iid": 7,
                "target_branch": "main",
                "source_branch": "topic",
                "last_commit": {"id": SHA},
                "source_project_id": 1,
                "target_project_id": 1,
            },
        }

    opened = GITLAB_TRANSLATORS[(MERGE_REQUEST_HOOK, "open")](merge_request("open"))
    updated = GITLAB_TRANSLATORS[(MERGE_REQUEST_HOOK, "update")](merge_request("update"))
    assert isinstance(opened, PullRequestUpdated)
    assert isinstance(updated, PullRequestUpdated)
    assert opened.pr_info()["username"] == "pusher"
    assert "username" not in updated.pr_info()
    assert (opened.number, opened.base_branch, opened.label) == (7, "main", "Merge request !7")
    assert opened.fork is False


def test_a_closed_pull_request_without_a_number_asks_for_nothing() -> None:
    translate = GITHUB_TRANSLATORS[("pull_request", "closed")]
    payload = {
        "pull_request": {"base": {"ref": "main"}},
        "repository": {"full_name": "org/repo"},
        "sender": {"login": "octo"},
    }
    assert translate(payload) is None
    assert translate({**payload, "number": 3}) == PullRequestClosed(
        repository=Repository(scm="github", uri_prefix=github_prefix("org/repo")),
        base_branch="main",
        number=3,
        creator="octo",
    )
