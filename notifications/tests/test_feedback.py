"""A pull request build's meta.summary comment and meta.status.* checks on GitHub.

PR builds are started from a (faked) GitHub pull request through the real services, finished
as the launcher reports them, and the outbox is run as its worker runs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from builds import outbox
from builds import services as build_services
from builds.models import Build, BuildStatus, OutboxMessage
from notifications.models import PullRequestComment
from notifications.tests.scm_fakes import GitHubSeen
from pipelines.models import Pipeline
from pipelines.services import Creator, start_event

pytestmark = pytest.mark.django_db

PR_SHA = "e" * 40
NEXT_SHA = "f" * 40
StartPr = Callable[..., Build]


def finish(build: Build, meta: dict[str, Any], status: str = BuildStatus.SUCCESS) -> Build:
    build_services.mark_running(build_id=build.pk)
    return build_services.finish_build(build_id=build.pk, status=status, meta=meta)


def summary_meta(**summary: Any) -> dict[str, Any]:
    return {
        "meta": {
            "summary": summary,
            "status": {
                "lint": json.dumps({"status": "FAILURE", "message": "3 issues found."}),
                "coverage": {"status": "SUCCESS", "url": "https://cov.example.com/r/1"},
            },
        }
    }


def test_a_pr_builds_summary_is_one_comment_edited_by_the_next_build_and_checks_are_posted(
    github: GitHubSeen, github_pipeline: Pipeline, pr_build: StartPr
) -> None:
    first = finish(pr_build(PR_SHA), summary_meta(coverage="Coverage is 81%", tests=42))
    outbox.dispatch()

    assert github.created == ["1001"] and github.edited == []
    link = f"https://sd.example.com/pipelines/{github_pipeline.pk}/builds/{first.pk}"
    assert github.comments["1001"] == (
        f"### SD Build [#{first.pk}]({link}) Job PR-7:test\n"
        "_node:20_\n"
        "- - - -\n"
        "__coverage__ - Coverage is 81%\n"
        "__tests__ - 42\n"
        "\n"
        "###### ~ Screwdriver automated build summary"
    )
    checks = {body["context"]: body for sha, body in github.statuses if sha == PR_SHA}
    lint = checks[f"Screwdriver/{github_pipeline.pk}/lint"]
    assert (lint["state"], lint["description"], lint["target_url"]) == (
        "failure",
        "3 issues found.",
        link,
    )
    coverage = checks[f"Screwdriver/{github_pipeline.pk}/coverage"]
    assert (coverage["state"], coverage["description"], coverage["target_url"]) == (
        "success",
        "coverage check succeeded",
        "https://cov.example.com/r/1",
    )

    # A new push to the pull request: its build rewrites the same comment.
    second = finish(pr_build(NEXT_SHA), summary_meta(coverage="Coverage is 90%"))
    outbox.dispatch()

    assert github.created == ["1001"] and github.edited == ["1001"]
    assert f"[#{second.pk}]" in github.comments["1001"]
    assert "__coverage__ - Coverage is 90%" in github.comments["1001"]
    assert "__tests__" not in github.comments["1001"]
    assert [
        body["state"]
        for sha, body in github.statuses
        if sha == NEXT_SHA and body["context"].endswith("/lint")
    ] == ["failure"]
    row = PullRequestComment.objects.get()
    assert (row.pr_num, row.job_name, row.comment_id, row.build_id) == (
        7,
        "PR-7:test",
        "1001",
        second.pk,
    )


def test_an_older_builds_late_run_never_overwrites_a_newer_summary(
    github: GitHubSeen, pr_build: StartPr
) -> None:
    older = finish(pr_build(PR_SHA), summary_meta(result="old"))
    newer = finish(pr_build(NEXT_SHA), summary_meta(result="new"))
    rows = OutboxMessage.objects.filter(handler="pr-feedback")
    outbox.dispatch(ids=list(rows.filter(build=newer).values_list("pk", flat=True)))
    outbox.dispatch(ids=list(rows.filter(build=older).values_list("pk", flat=True)))

    assert github.created == ["1001"] and github.edited == []
    assert "__result__ - new" in github.comments["1001"]
    assert not rows.filter(done_at__isnull=True).exists()


def test_split_comments_write_one_comment_per_key_and_a_deleted_one_is_posted_again(
    github: GitHubSeen, pr_build: StartPr
) -> None:
    summary = {"a": "one", "b": "two", "skip": {"nested": 1}}
    meta: dict[str, Any] = {"meta": {"summary": summary, "splitComments": "split"}}
    finish(pr_build(PR_SHA), meta)
    outbox.dispatch()
    assert sorted(github.created) == ["1001", "1002"]
    assert sorted(body.split("\n")[3] for body in github.comments.values()) == [
        "__a__ - one",
        "__b__ - two",
    ]

    del github.comments["1001"]  # someone deleted the first one on GitHub
    finish(pr_build(NEXT_SHA), meta)
    outbox.dispatch()
    assert github.created == ["1001", "1002", "1003"]
    assert github.edited == ["1002"]


def test_feedback_github_refuses_is_tried_again_and_nothing_is_posted_without_summary(
    github: GitHubSeen, pr_build: StartPr
) -> None:
    github.refuse_comments = 502
    build = finish(pr_build(PR_SHA), summary_meta(note="hello"))
    outbox.dispatch()

    row = OutboxMessage.objects.get(build=build, handler="pr-feedback")
    assert row.done_at is None and "GitHub refused a comment on pull request 7 (502)" in row.error
    assert PullRequestComment.objects.get().claimed_until is None

    github.refuse_comments = None
    OutboxMessage.objects.filter(pk=row.pk).update(due_at=timezone.now())
    outbox.sweep()
    assert PullRequestComment.objects.get().comment_id == "1001"
    assert github.created == ["1001"]

    quiet = finish(pr_build(NEXT_SHA), {"tests": {"coverage": "80"}}, BuildStatus.FAILURE)
    statuses_before = len(github.statuses)
    outbox.dispatch()
    assert OutboxMessage.objects.get(build=quiet, handler="pr-feedback").done_at
    assert [body["state"] for _, body in github.statuses[statuses_before:]] == ["failure"]


def test_a_branch_build_with_a_summary_comments_nowhere(
    github: GitHubSeen, github_pipeline: Pipeline
) -> None:
    event = start_event(
        pipeline=github_pipeline, start_from="~commit", creator=Creator(name="o", username="o")
    )
    build = Build.objects.get(event=event, job__name="main")
    finish(build, summary_meta(note="hello"))
    outbox.dispatch()
    assert github.created == []
    assert not any(body["context"].endswith("/lint") for _, body in github.statuses)


def test_a_plain_summary_and_top_level_statuses_are_posted_as_the_documented_forms_are(
    github: GitHubSeen, github_pipeline: Pipeline, pr_build: StartPr
) -> None:
    # `meta set summary "..."`, `meta set summary.KEY ...` and `meta set status.lint '{...}'`.
    lint = json.dumps({"status": "SUCCESS", "message": "No issues."})
    first = finish(
        pr_build(PR_SHA),
        {"summary": {"tests": 42}, "status": {"lint": lint}, "meta": {"summary": "All *green*"}},
    )
    outbox.dispatch()

    assert github.created == ["1001"]
    assert github.comments["1001"].split("\n")[3:6] == ["All *green*", "__tests__ - 42", ""]
    assert [
        (body["state"], body["description"])
        for sha, body in github.statuses
        if sha == PR_SHA and body["context"] == f"Screwdriver/{github_pipeline.pk}/lint"
    ] == [("success", "No issues.")]

    # Its restart: the same comment, edited.
    again = finish(pr_build(PR_SHA), {"summary": "Still green"})
    outbox.dispatch()
    assert github.created == ["1001"] and github.edited == ["1001"]
    assert f"[#{again.pk}]" in github.comments["1001"] and first.pk != again.pk
    assert github.comments["1001"].split("\n")[3:5] == ["Still green", ""]
