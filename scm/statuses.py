"""Commit statuses: each build status change shown on its commit, from a task after commit."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django_q.tasks import async_task

from builds.models import Build, BuildStatus
from pipelines.models import Pipeline
from scm.base import ScmError
from scm.github import GitHubScm
from scm.gitlab import GitLabScm

logger = logging.getLogger(__name__)

# Build status -> (GitHub state, description); anything else is pending.
_STATES: dict[str, tuple[str, str]] = {
    BuildStatus.SUCCESS: ("success", "The build passed."),
    BuildStatus.FAILURE: ("failure", "The build failed."),
    BuildStatus.UNSTABLE: ("failure", "The build is unstable."),
    BuildStatus.ABORTED: ("error", "The build was aborted."),
    BuildStatus.RUNNING: ("pending", "The build is running."),
    BuildStatus.QUEUED: ("pending", "The build is queued."),
}


def enqueue_commit_status(*, build_id: int) -> None:
    """After the transaction commits, queue the commit status of a GitHub pipeline's build."""
    transaction.on_commit(lambda: _enqueue(build_id))


def enqueue_commit_statuses(*, build_ids: list[int]) -> None:
    """Queue the commit status of builds just queued, after the transaction commits."""
    ids = list(build_ids)
    transaction.on_commit(lambda: _enqueue_many(ids))


def _enqueue_many(build_ids: list[int]) -> None:
    github = Build.objects.filter(
        pk__in=build_ids, event__pipeline__scm_context__regex=r"^(github|gitlab):"
    ).values_list("pk", flat=True)
    for build_id in github:
        async_task("scm.tasks.report_commit_status", build_id)


def _enqueue(build_id: int) -> None:
    # Outside the transition's transaction, so the check never delays or fails the transition.
    context = (
        Build.objects.filter(pk=build_id).values_list("event__pipeline__scm_context", flat=True)
    ).first()
    if context and context.startswith(("github:", "gitlab:")):
        async_task("scm.tasks.report_commit_status", build_id)


def status_context(build: Build) -> str:
    """Return Screwdriver's status context, Screwdriver/<pipelineId>/<job>."""
    return f"Screwdriver/{build.event.pipeline_id}/{build.job.name}"


def report_commit_status(*, build_id: int) -> bool:
    """Post the build's current status to its commit; False when there is nothing to post."""
    build = Build.objects.select_related("job", "event__pipeline").filter(pk=build_id).first()
    if build is not None and build.event.pipeline.scm_context.startswith("gitlab:"):
        return _report_to_gitlab(build)
    if build is None or not build.event.pipeline.scm_context.startswith("github:"):
        return False
    pipeline: Pipeline = build.event.pipeline
    scm = GitHubScm()
    if not scm.token:
        return False
    state, description = _STATES.get(build.status, ("pending", "The build is waiting to run."))
    ref = scm.parse_url(pipeline.checkout_url)
    sha = build.sha or build.event.sha
    try:
        scm.post_status(
            ref,
            sha,
            state=state,
            context=status_context(build),
            description=description,
            target_url=f"{settings.SD_UI_URL}/pipelines/{pipeline.pk}/builds/{build.pk}",
        )
    except ScmError as exc:
        logger.warning("No commit status for build %s: %s", build_id, exc)
        return False
    return True


def _report_to_gitlab(build: Build) -> bool:
    # GitLab has its own states (running, canceled, ...), so GitLabScm maps the build status.
    pipeline: Pipeline = build.event.pipeline
    scm = GitLabScm()
    if not scm.token:
        return False
    try:
        scm.post_build_status(
            scm.parse_url(pipeline.checkout_url),
            build.sha or build.event.sha,
            build_status=build.status,
            context=status_context(build),
            target_url=f"{settings.SD_UI_URL}/pipelines/{pipeline.pk}/builds/{build.pk}",
        )
    except ScmError as exc:
        logger.warning("No commit status for build %s: %s", build.pk, exc)
        return False
    return True
