"""Events one pipeline starts in others: a parent's startAll, and `~subscribe` on pushes."""

from __future__ import annotations

import logging

from pipelines.models import Event, Pipeline
from pipelines.services.events import Creator, Subscribed, start_event
from pipelines.services.pipelines import PipelineError
from pipelines.services.pull_requests import restricted_pr_message

logger = logging.getLogger(__name__)


def start_all_children(*, parent: Pipeline, creator: Creator) -> list[Event]:
    """Start `~commit` at the branch head of each ACTIVE child (Screwdriver's startAll).

    A child that cannot start (no job starts from ~commit, all disabled) is logged and skipped
    so the others still start.
    """
    events = []
    for child in Pipeline.objects.filter(config_pipeline=parent, state=Pipeline.State.ACTIVE):
        try:
            events.append(
                start_event(
                    pipeline=child,
                    start_from="~commit",
                    creator=creator,
                    cause_message=f"Started by {creator.username}",
                )
            )
        except PipelineError as exc:
            logger.info("startAll of %s: child %s: %s", parent.pk, child.pk, exc.message)
    return events


def _matches(subscribed_uri: str, uri_prefix: str, branch: str) -> bool:
    # An scm_uri ends in `branch` or `branch:rootDir`; a subscription names the repository
    # and branch, whatever folder the push touched.
    branch_uri = f"{uri_prefix}{branch}"
    return subscribed_uri == branch_uri or subscribed_uri.startswith(f"{branch_uri}:")


def subscribers_of(*, uri_prefix: str, branch: str, action: str) -> list[Pipeline]:
    """The ACTIVE pipelines whose `subscribe.scmUrls` name this repository's branch and action."""
    found = []
    for pipeline in Pipeline.objects.filter(state=Pipeline.State.ACTIVE).exclude(
        scm_uri__startswith=uri_prefix
    ):
        for entry in pipeline.subscribed_scm_urls or []:
            if not isinstance(entry, dict) or action not in (entry.get("actions") or []):
                continue
            if _matches(str(entry.get("scmUri", "")), uri_prefix, branch):
                found.append(pipeline)
                break
    return found


def start_subscribers(
    *,
    uri_prefix: str,
    branch: str,
    sha: str,
    source_url: str,
    pusher: str,
    action: str = "commit",
    delivery_key: str | None = None,
    cause_message: str = "",
    fork: bool = False,
) -> list[Event]:
    """A commit (or a pull request) of a subscribed repository: start `~subscribe` on each
    pipeline whose subscription lists that action.

    As in Screwdriver the subscriber's event runs its own branch head; the subscribed commit
    is recorded as the event's subscribedConfigSha and subscribedSourceUrl. A pull request
    (`action="pr"`, `branch` its base) is taken for a commit: its event is an ordinary
    `~subscribe` event, not a PR event of the subscriber, and the pull request's code is not
    checked out. A subscriber whose restrictPR refuses pull requests from a fork (or a branch)
    is not started by one.
    """
    events = []
    cause = cause_message or f"Commit {sha[:7]} pushed to a subscribed repository"
    for pipeline in subscribers_of(uri_prefix=uri_prefix, branch=branch, action=action):
        if action == "pr":
            refused = restricted_pr_message(pipeline=pipeline, fork=fork)
            if refused:
                logger.info("~subscribe on pipeline %s: %s", pipeline.pk, refused)
                continue
        try:
            events.append(
                start_event(
                    pipeline=pipeline,
                    start_from="~subscribe",
                    creator=Creator(name=pusher or "git push", username=pusher or "sd:scm"),
                    cause_message=cause,
                    delivery_key=delivery_key,
                    subscribed=Subscribed(sha=sha, source_url=source_url),
                )
            )
        except PipelineError as exc:
            logger.info("~subscribe on pipeline %s started nothing: %s", pipeline.pk, exc.message)
    return events
