"""Commit statuses: each build status change shown on its commit, from the outbox."""

from __future__ import annotations

import logging

from django.conf import settings

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
    # It waited behind a blocker or a freeze window and gave way to a newer build of its job.
    BuildStatus.COLLAPSED: ("error", "A newer build of this job ran instead."),
    BuildStatus.RUNNING: ("pending", "The build is running."),
    BuildStatus.QUEUED: ("pending", "The build is queued."),
}


def status_context(build: Build) -> str:
    """Return Screwdriver's status context, Screwdriver/<pipelineId>/<job>."""
    return f"Screwdriver/{build.event.pipeline_id}/{build.job.name}"


def has_commit_statuses(scm_context: str) -> bool:
    """Whether builds of a pipeline of this SCM show on their commits (GitHub and GitLab)."""
    return scm_context.startswith(("github:", "gitlab:"))


def report_commit_status(*, build_id: int) -> bool:
    """Post the build's current status to its commit; False when there is nothing to post."""
    build = Build.objects.select_related("job", "event__pipeline").filter(pk=build_id).first()
    if build is None or not has_commit_statuses(build.event.pipeline.scm_context):
        return False
    if build.event.pipeline.scm_context.startswith("gitlab:"):
        return _report_to_gitlab(build)
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
