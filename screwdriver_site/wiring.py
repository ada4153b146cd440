"""What follows a build's status change, wired in one place.

Each handler takes `build_id`, acts on the build's current state and is safe to run twice:
the outbox runs it at least once after the transaction that changed the status commits.
Loaded once when the project starts (`SiteConfig.ready`).
"""

from __future__ import annotations

from typing import Any

from builds import dispatch, live, outbox
from builds import services as build_services
from builds.api.serializers import BuildSerializer
from builds.models import Build, BuildStatus
from notifications import feedback
from notifications import services as notices
from pipelines.services import triggers
from scm import statuses

S = BuildStatus
ENDED = (S.SUCCESS, S.FAILURE, S.UNSTABLE, S.ABORTED)


def _as_the_api_shows_it(build: Build) -> dict[str, Any]:
    return dict(BuildSerializer(build, context={"with_steps": True}).data)


def connect_handlers() -> None:
    """Connect every handler to the statuses it follows, and say how builds look live."""
    # The build page's live status is the API's representation of the build.
    live.render_builds_with(_as_the_api_shows_it)
    # A stopped build's launcher is told to stop first: each row is its own task, but rows
    # swept together run in the order they were written, and this is the one not to delay.
    outbox.connect("executor-stop", statuses=(S.ABORTED,), run=dispatch.stop_build)
    # Queued, running and ended builds show on their commit (GitHub and GitLab pipelines);
    # a queued build that waited and gave way to a newer one does not stay pending there.
    outbox.connect(
        "commit-status",
        statuses=(S.QUEUED, S.RUNNING, *ENDED, S.COLLAPSED),
        run=statuses.report_commit_status,
        latest_only=True,
        concerns=lambda build: statuses.has_commit_statuses(build.event.pipeline.scm_context),
    )
    # Other pipelines' jobs that follow this one, their joins, and builds it blocked there.
    outbox.connect("remote-triggers", statuses=ENDED, run=triggers.run_remote_triggers)
    # The deploy token GitLab issued for an ended build's clone is revoked (docs/security.md).
    outbox.connect(
        "clone-credential-revoke",
        statuses=ENDED,
        run=build_services.revoke_checkout_credential,
    )
    # What an ended build left on its engine is removed.
    outbox.connect("executor-cleanup", statuses=ENDED, run=dispatch.cleanup_build)
    # Email and Slack notices of a job's `settings`: sent for the build's current status, so a
    # row that a later change supersedes leaves the sending to the later one's run.
    outbox.connect(
        "notify",
        statuses=tuple(S),
        run=notices.notify_build,
        latest_only=True,
        concerns=notices.may_notify,
    )
    # An ended pull request build's meta.summary comment and meta.status.* commit statuses.
    outbox.connect(
        "pr-feedback",
        statuses=ENDED,
        run=feedback.report_pr_feedback,
        concerns=lambda build: build.event.type == build.event.Type.PR,
    )
