"""Notices of a build's statuses by email and Slack: planned once, sent once each, retried.

`notify_build` is the outbox handler (wired in `screwdriver_site/wiring.py`). It runs after
the status change commits, in a worker, so a slow or absent mail server never delays a build.
It plans the notices the build's current status calls for (a unique row per build, status,
channel and recipient: a rerun plans nothing new) and sends every pending one, each claimed
first so two workers never send one twice. A notice that could not be sent makes the handler
fail, and the outbox runs it again after 1, 2, 4 and 8 minutes; on its last try, or when the
far end refuses it for good, the notice is FAILED and the build page says why.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from builds.models import Build, BuildStatus
from builds.outbox import MAX_ATTEMPTS
from notifications import messages, rules
from notifications.models import Notice, NoticeChannel, NoticeState
from notifications.senders import (
    DeliveryError,
    EmailSender,
    email_configured,
    post_slack,
    slack_route,
)
from pipelines.config.notifications import is_email
from pipelines.models import Job

logger = logging.getLogger(__name__)

# Longer than a worker task may run (60 s): a live claim is never taken twice.
CLAIM = timedelta(seconds=90)
# A build names at most this many files in its email.
MAX_CHANGED_FILES = 100
NO_SMTP = "This server sends no email: its operator has not set SD_SMTP_HOST."
NO_SLACK = "This server posts nothing to Slack: its operator has not set SD_SLACK_TOKEN."
NO_WORKSPACE = (
    "This server has no Slack token for the workspace {workspace}: its operator names "
    "workspaces in SD_SLACK_WORKSPACES."
)


class NoticesPending(Exception):
    """Some notices of a build could not be sent yet: the outbox runs the handler again."""


def notify_build(*, build_id: int) -> int:
    """Plan the notices the build's current status calls for and send every pending one.

    Returns how many were sent; raises NoticesPending when some are to be tried again.
    """
    build = Build.objects.select_related("job", "event__pipeline").filter(pk=build_id).first()
    if build is None:
        return 0
    plan_notices(build)
    return send_pending(build_id=build.pk)


def job_settings(build: Build) -> dict[str, Any]:
    """The `settings` of the build's job, from the config its notices follow.

    A pull request's screwdriver.yaml is whatever its author wrote: its builds notify as the
    pipeline's branch says (the job of the same name there), never whom the pull request says.
    """
    if build.event.is_pull_request and ":" in build.job.name:
        base = build.job.name.split(":", 1)[1]
        permutations = (
            Job.objects.filter(pipeline_id=build.job.pipeline_id, name=base)
            .values_list("permutations", flat=True)
            .first()
        ) or []
        if not permutations:
            return {}
        config = permutations[min(build.permutation, len(permutations) - 1)]
    else:
        config = build.job_config()
    found = config.get("settings") if isinstance(config, dict) else None
    return found if isinstance(found, dict) else {}


def is_fixed(build: Build) -> bool:
    """Whether this SUCCESS follows a FAILURE of the same job (and permutation), as
    Screwdriver decides FIXED: the job's latest result before it failed."""
    if build.status != BuildStatus.SUCCESS:
        return False
    previous = (
        Build.objects.filter(
            job_id=build.job_id,
            permutation=build.permutation,
            pk__lt=build.pk,
            status__in=[BuildStatus.SUCCESS, BuildStatus.FAILURE],
        )
        .order_by("-pk")
        .values_list("status", flat=True)
        .first()
    )
    return previous == BuildStatus.FAILURE


def facts_of(build: Build, status: str) -> messages.BuildFacts:
    """What a notice saying ``status`` tells about the build; links go to SD_UI_URL."""
    event = build.event
    pipeline = event.pipeline
    commit = event.commit if isinstance(event.commit, dict) else {}
    commit_url = str(commit.get("url") or "")
    changed = rules.changed_files(build.meta) or rules.changed_files(event.meta)
    ui = settings.SD_UI_URL
    return messages.BuildFacts(
        build_id=build.pk,
        status=status,
        pipeline_id=pipeline.pk,
        repo_name=str((pipeline.scm_repo or {}).get("name") or pipeline.name),
        root_dir=pipeline.root_dir,
        job_name=build.job.name,
        sha=build.sha or event.sha,
        commit_message=str(commit.get("message") or ""),
        commit_url=commit_url if commit_url.startswith(("https://", "http://")) else "",
        cause=event.cause_message or build.cause,
        build_url=f"{ui}/pipelines/{pipeline.pk}/builds/{build.pk}",
        pipeline_url=f"{ui}/pipelines/{pipeline.pk}",
        changed_files=tuple(changed[:MAX_CHANGED_FILES]),
    )


def _commit_author(build: Build) -> str | None:
    author = (
        (build.event.commit or {}).get("author") if isinstance(build.event.commit, dict) else {}
    )
    address = str((author or {}).get("username") or "") if isinstance(author, dict) else ""
    # GitHub's stand-in addresses reach nobody.
    if not is_email(address) or address.lower().endswith("noreply.github.com"):
        return None
    return address


def may_notify(build: Build) -> bool:
    """Whether the build's job asks for any notice (email or Slack) at all."""
    config = job_settings(build)
    return rules.email_rule(config) is not None or rules.slack_rule(config) is not None


def plan_notices(build: Build) -> int:
    """Write the notices the build's current status calls for; return how many were new."""
    config = job_settings(build)
    email, slack = rules.email_rule(config), rules.slack_rule(config)
    if email is None and slack is None:
        return 0
    job_name = build.job.name
    # Who hears is the pipeline's choice: a pull request's meta changes what is said only.
    trusted = not build.event.is_pull_request
    meta = build.meta if isinstance(build.meta, dict) else {}
    fixed = is_fixed(build)
    planned: list[Notice] = []

    def notice(channel: str, recipient: str, status: str, content: dict[str, Any]) -> Notice:
        return Notice(
            build=build,
            build_status=build.status,
            status=status,
            channel=channel,
            recipient=recipient,
            content=content,
        )

    said = rules.notice_status(build.status, email.statuses, fixed=fixed) if email else None
    if email is not None and said is not None:
        addresses = list((trusted and rules.meta_addresses(meta, job_name)) or email.addresses)
        author = _commit_author(build) if trusted and settings.SD_NOTIFY_COMMIT_AUTHOR else None
        if author is not None:
            addresses.append(author)
        content = messages.email_content(facts_of(build, said))
        seen: set[str] = set()
        for address in addresses[: rules.MAX_RECIPIENTS]:
            if address.lower() not in seen:
                seen.add(address.lower())
                planned.append(notice(NoticeChannel.EMAIL, address, said, content))
    said = rules.notice_status(build.status, slack.statuses, fixed=fixed) if slack else None
    if slack is not None and said is not None:
        channels = (trusted and rules.meta_channels(meta, job_name)) or slack.channels
        line = rules.slack_message(slack, meta, job_name, said)
        content = messages.slack_content(
            facts_of(build, said),
            minimized=rules.meta_minimized(meta, job_name, slack.minimized),
            message=line,
            unfurl_links=rules.unfurls_links(slack),
            # The branch's settings and a branch build's meta may mention people, as in
            # Screwdriver; a pull request's meta (its author's words) may not.
            mentions=trusted or line == rules.slack_message(slack, {}, job_name, said),
        )
        planned += [notice(NoticeChannel.SLACK, c, said, content) for c in channels]
    for row in planned:
        if (why := _unsendable(row)) is not None:
            row.state, row.error = NoticeState.FAILED, why
    before = Notice.objects.filter(build=build).count()
    # A rerun of the handler (or two at once) plans the same rows: the constraint keeps one.
    Notice.objects.bulk_create(planned, ignore_conflicts=True)
    return Notice.objects.filter(build=build).count() - before


def _unsendable(notice: Notice) -> str | None:
    """Why this server cannot send the notice at all (a setting it lacks), or None."""
    if notice.channel == NoticeChannel.EMAIL:
        return None if email_configured() else NO_SMTP
    route = slack_route(notice.recipient)
    if route.token:
        return None
    return NO_WORKSPACE.format(workspace=route.workspace) if route.named_workspace else NO_SLACK


def _line(notice: Notice) -> str:
    """What one server's silence stops for the rest of a run: SMTP, or one Slack workspace."""
    if notice.channel == NoticeChannel.EMAIL:
        return notice.channel
    return f"{notice.channel}:{slack_route(notice.recipient).workspace}"


def send_pending(*, build_id: int) -> int:
    """Send the build's pending notices; return how many were sent.

    Raises NoticesPending when some could not be sent and will be tried again.
    """
    now = timezone.now()
    pending = list(
        Notice.objects.filter(build_id=build_id, state=NoticeState.PENDING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("pk")
    )
    down: dict[str, DeliveryError] = {}
    left: list[str] = []
    sent = 0
    with EmailSender() as email:
        for notice in pending:
            if not _claim(notice, now):
                continue  # another worker holds it, or sent it meanwhile
            try:
                if _line(notice) in down:
                    # The server did not answer the one before: not asked again in this run.
                    raise down[_line(notice)]
                if notice.channel == NoticeChannel.EMAIL:
                    email.send(to=notice.recipient, content=notice.content)
                else:
                    post_slack(channel=notice.recipient, content=notice.content)
            except DeliveryError as exc:
                if exc.channel_down:
                    down[_line(notice)] = exc
                if not _record_failure(notice, exc):
                    left.append(str(exc))
            else:
                Notice.objects.filter(pk=notice.pk).update(
                    state=NoticeState.SENT, sent_at=timezone.now(), claimed_until=None, error=""
                )
                sent += 1
    if left:
        raise NoticesPending(f"{len(left)} notice(s) of build {build_id} not sent yet: {left[0]}")
    return sent


def _claim(notice: Notice, now: Any) -> bool:
    claimed = (
        Notice.objects.filter(pk=notice.pk, state=NoticeState.PENDING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + CLAIM, attempts=F("attempts") + 1)
    )
    notice.attempts += 1
    return claimed == 1


def _record_failure(notice: Notice, exc: DeliveryError) -> bool:
    """Keep the error; True when the notice is given up (refused for good, or its last try)."""
    final = exc.permanent or notice.attempts >= MAX_ATTEMPTS
    error = (
        str(exc) if exc.permanent or not final else f"Gave up after {notice.attempts} tries: {exc}"
    )
    logger.warning("Notice %s (%s) not sent: %s", notice.pk, notice, exc)
    Notice.objects.filter(pk=notice.pk).update(
        state=NoticeState.FAILED if final else NoticeState.PENDING,
        error=error[:1024],
        claimed_until=None,
    )
    return final
