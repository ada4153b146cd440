"""A pull request build's feedback on its pull request, as Screwdriver gives it.

When a PR build ends, its summary (`meta.summary.KEY`, `summary.KEY` or a plain `summary`:
`pr_meta` reads them) becomes a comment on the pull request, one per job, edited in place by
later builds of that job (its id is remembered); `meta.splitComments` makes one comment per
summary line. Each `meta.status.NAME` or `status.NAME` (an object, or a JSON string, with
`status` SUCCESS/FAILURE/PENDING, `message` and `url`) becomes a commit status
`Screwdriver/<pipelineId>/NAME` on the build's commit.
`report_pr_feedback` is the outbox handler; everything it does can be done twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from builds.models import Build
from notifications import pr_meta
from notifications.models import PullRequestComment
from pipelines.models import Pipeline
from scm.base import CommitCheck, RepoRef, Scm, ScmError
from scm.clients import scm_of_context

logger = logging.getLogger(__name__)

CHECK_STATES = ("SUCCESS", "FAILURE", "PENDING")
# Screwdriver's default when a check names no status.
DEFAULT_CHECK_STATE = "SUCCESS"
# A build posts at most this many extra statuses.
MAX_CHECKS = 25
MAX_CHECK_NAME = 100
# GitHub takes comments up to 65,536 characters.
MAX_COMMENT = 60_000
CLAIM = timedelta(seconds=90)
SUFFIX = "###### ~ Screwdriver automated build summary"


class FeedbackNotPosted(Exception):
    """Some feedback did not reach the SCM: the outbox runs the handler again."""


@dataclass(frozen=True)
class Comment:
    keyword: str  # "" for the whole summary
    body: str


def pr_comments(build: Build, build_url: str) -> list[Comment]:
    """The comments the build's summary asks for, in Screwdriver's layout (values are markdown)."""
    lines = pr_meta.summary_lines(build.meta)
    if not lines:
        return []
    head = (
        f"### SD Build [#{build.pk}]({build_url}) Job {build.job.name}\n"
        f"_{build.container or 'unknown image'}_\n- - - -"
    )

    def body(text: str) -> str:
        if len(text) > MAX_COMMENT:
            text = text[:MAX_COMMENT] + "\n\n(The summary was cut here: it is too long.)"
        return f"{head}\n{text}\n\n{SUFFIX}"

    if pr_meta.splits_comments(build.meta):
        return [Comment(keyword=key[:200], body=body(line)) for key, line in lines.items()]
    return [Comment(keyword=pr_meta.PLAIN, body=body("\n".join(lines.values())))]


def commit_checks(build: Build, *, pipeline_id: int, build_url: str) -> list[CommitCheck]:
    """The extra commit statuses `meta.status.NAME` asks for; malformed ones are skipped."""
    checks = []
    for name, value in list(pr_meta.check_values(build.meta).items())[:MAX_CHECKS]:
        check = value
        if isinstance(check, str):
            try:
                check = json.loads(check)
            except ValueError:
                logger.info("meta.status.%s of build %s is not JSON: skipped", name, build.pk)
                continue
        if not isinstance(check, dict):
            continue
        state = check.get("status", DEFAULT_CHECK_STATE)
        if state not in CHECK_STATES:
            continue
        verb = {"SUCCESS": "succeeded", "FAILURE": "failed", "PENDING": "pending"}[state]
        message = check.get("message")
        url = check.get("url")
        checks.append(
            CommitCheck(
                context=f"Screwdriver/{pipeline_id}/{str(name)[:MAX_CHECK_NAME]}",
                state=state,
                description=str(message) if message else f"{name} check {verb}",
                # Only web links: a check's link is shown to everyone who opens the PR.
                target_url=(
                    url
                    if isinstance(url, str) and url.startswith(("https://", "http://"))
                    else build_url
                ),
            )
        )
    return checks


def report_pr_feedback(*, build_id: int) -> int:
    """Post an ended PR build's summary comment and extra statuses; return how many went.

    Raises FeedbackNotPosted (after trying all of them) when one did not reach the SCM.
    """
    build = Build.objects.select_related("job", "event__pipeline").filter(pk=build_id).first()
    if build is None or not build.is_finished or not build.event.is_pull_request:
        return 0
    pipeline = build.event.pipeline
    build_url = f"{settings.SD_UI_URL}/pipelines/{pipeline.pk}/builds/{build.pk}"
    checks = commit_checks(build, pipeline_id=pipeline.pk, build_url=build_url)
    comments = pr_comments(build, build_url)
    if not checks and not comments:
        return 0
    scm = scm_of_context(pipeline.scm_context)
    ref = pipeline.repo_ref()
    sha = build.sha or build.event.sha
    posted, errors = 0, []
    for check in checks:
        try:
            posted += scm.post_check(ref, sha, check)
        except ScmError as exc:
            errors.append(f"{check.context}: {exc}")
    for comment in comments:
        try:
            posted += _write_comment(scm, ref, pipeline, build, comment)
        except ScmError as exc:
            errors.append(f"comment: {exc}")
    if errors:
        raise FeedbackNotPosted("; ".join(errors))
    return posted


def _write_comment(
    scm: Scm, ref: RepoRef, pipeline: Pipeline, build: Build, comment: Comment
) -> bool:
    """Post or edit the job's comment; False when a newer build's summary is already there."""
    pr_num = int(build.event.pr_num or 0)
    row, _ = PullRequestComment.objects.get_or_create(
        pipeline=pipeline, pr_num=pr_num, job_name=build.job.name, keyword=comment.keyword
    )
    now = timezone.now()
    # One writer at a time, and never an older build over a newer one's summary.
    claimed = (
        PullRequestComment.objects.filter(pk=row.pk)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .filter(Q(build__isnull=True) | Q(build_id__lte=build.pk))
        .update(claimed_until=now + CLAIM)
    )
    if not claimed:
        row.refresh_from_db()
        if row.build_id is not None and row.build_id > build.pk:
            return False
        raise ScmError("another worker is writing this comment; it is written again later.")
    row.refresh_from_db()
    try:
        comment_id = scm.write_pr_comment(ref, pr_num, comment.body, comment_id=row.comment_id)
    except BaseException:
        PullRequestComment.objects.filter(pk=row.pk).update(claimed_until=None)
        raise
    PullRequestComment.objects.filter(pk=row.pk).update(
        comment_id=comment_id, build=build, claimed_until=None
    )
    return bool(comment_id)
