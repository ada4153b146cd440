"""What a webhook asks for, in no SCM's words, and the one place that acts on it.

Each SCM's module turns a delivery's payload into one of the actions below; `perform` starts
(or stops) what it asks for. Everything started carries the delivery's key, so a delivery
handled again after its worker died starts only what is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines import workflow
from pipelines.models import Event, Pipeline
from pipelines.services import (
    Creator,
    PipelineError,
    close_pr,
    event_of_delivery,
    notice_push,
    scm_for,
    start_event,
    start_pr_event,
    start_subscribers,
    stop_pr_builds,
)
from pipelines.services.pull_requests import changed_files_of_pr, restricted_pr_message

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Repository:
    """The repository a delivery speaks for: its SCM ("github", "gitlab") and scm_uri prefix."""

    scm: str
    uri_prefix: str


@dataclass(frozen=True)
class Push:
    """New commits on a branch; changed_files is None when the SCM did not list them all."""

    repository: Repository
    branch: str
    sha: str
    pusher: str
    changed_files: list[str] | None
    # The head commit's web page, when the SCM gave it (a subscriber's event links it).
    url: str = ""


@dataclass(frozen=True)
class RefCreated:
    """A tag or a release ("tag", "release"); an empty sha is looked up from the tag."""

    repository: Repository
    kind: str
    name: str
    sha: str
    default_branch: str
    creator: str


@dataclass(frozen=True)
class PullRequestUpdated:
    """A pull (or merge) request opened, reopened or given new commits.

    ``label`` names the request in messages ("Pull request 7", "Merge request !7");
    ``author`` is None when the SCM does not say who wrote it (only who pushed).
    """

    repository: Repository
    base_branch: str
    number: int
    sha: str
    title: str
    url: str
    source_branch: str
    fork: bool
    author: str | None
    creator: str
    label: str

    def pr_info(self) -> dict[str, Any]:
        """What the request's events record of it."""
        info: dict[str, Any] = {
            "title": self.title,
            "url": self.url,
            "ref": self.source_branch,
            "fork": self.fork,
        }
        if self.author is not None:
            # The author may restart an unrestricted PR without push rights, as in Screwdriver.
            info["username"] = self.author
        return info


@dataclass(frozen=True)
class PullRequestClosed:
    """A pull (or merge) request closed, merged or not."""

    repository: Repository
    base_branch: str
    number: int
    creator: str


Action = Push | RefCreated | PullRequestUpdated | PullRequestClosed

# payload -> the action it asks for, or None when it asks for nothing
Translator = Callable[[dict[str, Any]], Action | None]


class Handled(list[Event]):
    """The events an action started, with notes on what it chose not to start and why."""

    def __init__(self, events: list[Event] | None = None, notes: list[str] | None = None) -> None:
        super().__init__(events or [])
        self.notes: list[str] = list(notes or [])


def perform(action: Action | None, *, delivery_key: str) -> Handled:
    """Act on what a delivery asks for; every event started carries the delivery's key."""
    match action:
        case Push():
            return _push(action, delivery_key)
        case RefCreated():
            return _ref_created(action, delivery_key)
        case PullRequestUpdated():
            return _pr_updated(action, delivery_key)
        case PullRequestClosed():
            return _pr_closed(action, delivery_key)
    return Handled()


def _pipelines_of(repository: Repository) -> list[Pipeline]:
    """The active pipelines of the repository, and of no other."""
    return list(
        Pipeline.objects.filter(
            scm_context__startswith=f"{repository.scm}:",
            state=Pipeline.State.ACTIVE,
            scm_uri__startswith=repository.uri_prefix,
        )
    )


def _on_branch(repository: Repository, branch: str) -> list[Pipeline]:
    return [p for p in _pipelines_of(repository) if p.repo_ref().branch == branch]


def _for_pr_into(repository: Repository, base: str) -> list[Pipeline]:
    """The pipelines a pull request into `base` runs in: those of that branch, then those of
    other branches whose jobs ask for ``~pr:<base>`` (by name or regex), as in Screwdriver."""
    pipelines = _pipelines_of(repository)
    own = [p for p in pipelines if p.repo_ref().branch == base]
    others = [
        p
        for p in pipelines
        if p.repo_ref().branch != base and workflow.start_jobs(p.workflow_graph, f"~pr:{base}")
    ]
    return own + others


def _creator(username: str) -> Creator:
    return Creator(name=username, username=username)


def _start(
    pipeline: Pipeline,
    start_from: str,
    *,
    sha: str,
    creator: Creator,
    cause: str,
    delivery_key: str,
    changed_files: list[str] | None = None,
    branch: str | None = None,
) -> Event | None:
    try:
        return start_event(
            pipeline=pipeline,
            start_from=start_from,
            creator=creator,
            sha=sha,
            cause_message=cause,
            changed_files=changed_files,
            delivery_key=delivery_key,
            branch=branch,
        )
    except PipelineError as exc:
        logger.info("%s on pipeline %s started nothing: %s", start_from, pipeline.pk, exc.message)
        return None


def _trigger(graph: dict[str, Any], kind: str, name: str) -> str | None:
    """Return the start_from the graph asks for: `~kind:name` first, then plain `~kind`."""
    for start_from in (f"~{kind}:{name}", f"~{kind}"):
        try:
            if workflow.start_jobs(graph, start_from):
                return start_from
        except ValueError:
            continue
    return None


def _push(push: Push, delivery_key: str) -> Handled:
    """~commit on the branch's pipelines, ~commit:branch where other pipelines ask for it."""
    creator = _creator(push.pusher)
    cause = f"Commit {push.sha[:7]} pushed to {push.branch} by {creator.username}"
    events = Handled()
    for pipeline in _pipelines_of(push.repository):
        event: Event | None = None
        if pipeline.repo_ref().branch == push.branch:
            event = notice_push(
                pipeline=pipeline,
                sha=push.sha,
                pusher=creator.username,
                changed_files=push.changed_files,
                delivery_key=delivery_key,
            )
        elif workflow.start_jobs(pipeline.workflow_graph, f"~commit:{push.branch}"):
            event = _start(
                pipeline,
                f"~commit:{push.branch}",
                sha=push.sha,
                creator=creator,
                cause=cause,
                delivery_key=delivery_key,
                changed_files=push.changed_files,
                branch=push.branch,
            )
        if event is not None:
            events.append(event)
    events += start_subscribers(
        uri_prefix=push.repository.uri_prefix,
        branch=push.branch,
        sha=push.sha,
        source_url=push.url,
        pusher=creator.username,
        delivery_key=delivery_key,
    )
    return events


def _ref_created(ref: RefCreated, delivery_key: str) -> Handled:
    """~tag or ~release (or their :name forms) on the pipelines of the default branch."""
    creator = _creator(ref.creator)
    events = Handled()
    for pipeline in _on_branch(ref.repository, ref.default_branch):
        start_from = _trigger(pipeline.workflow_graph, ref.kind, ref.name)
        if start_from is None:
            continue
        sha = ref.sha or scm_for(pipeline).tag_sha(pipeline.repo_ref(), ref.name)
        cause = f"{ref.kind.capitalize()} {ref.name} created"
        event = _start(
            pipeline, start_from, sha=sha, creator=creator, cause=cause, delivery_key=delivery_key
        )
        if event is not None:
            events.append(event)
    return events


def _pr_updated(request: PullRequestUpdated, delivery_key: str) -> Handled:
    """Stop the request's builds and run its ~pr jobs anew, once per pipeline of its base
    (and its ~pr:<base> jobs on the pipelines of other branches that have them).

    A pipeline where this delivery already started its event (a worker died after) is left
    as it is.
    """
    events = Handled()
    number = request.number
    changed: tuple[list[str] | None, str] | None = None
    for pipeline in _for_pr_into(request.repository, request.base_branch):
        done = event_of_delivery(pipeline=pipeline, delivery_key=delivery_key)
        if done is not None:
            events.append(done)
            continue
        stop_pr_builds(pipeline=pipeline, pr_num=number, message=f"{request.label} was updated")
        # The restriction is the base branch's (the pipeline's), never the request's own file.
        skipped = restricted_pr_message(pipeline=pipeline, fork=request.fork)
        if skipped:
            events.notes.append(skipped)
            continue
        if changed is None:
            # One request, one diff: asked once for every pipeline of its base branch.
            changed = changed_files_of_pr(pipeline=pipeline, pr_num=number)
            if changed[1]:
                events.notes.append(changed[1])
        try:
            event = start_pr_event(
                pipeline=pipeline,
                pr_num=number,
                sha=request.sha,
                creator=_creator(request.creator),
                pr=request.pr_info(),
                changed_files=changed[0],
                delivery_key=delivery_key,
                base_branch=request.base_branch,
            )
        except PipelineError as exc:
            logger.info("%s on pipeline %s started nothing: %s", request.label, pipeline.pk, exc)
            events.notes.append(exc.message)
            continue
        if event is not None:
            events.append(event)
    # Subscribers asking for ~pr run their ~subscribe jobs, as on a commit (Screwdriver).
    events += start_subscribers(
        uri_prefix=request.repository.uri_prefix,
        branch=request.base_branch,
        sha=request.sha,
        source_url=request.url,
        pusher=request.creator,
        action="pr",
        delivery_key=delivery_key,
        cause_message=f"{request.label} into {request.base_branch} of a subscribed repository",
        fork=request.fork,
    )
    return events


def _pr_closed(request: PullRequestClosed, delivery_key: str) -> Handled:
    """Abort the request's builds, archive its jobs, run ~pr-closed (or ~pr-closed:<base> on
    the pipelines of other branches)."""
    events = Handled()
    base = request.base_branch
    for pipeline in _pipelines_of(request.repository):
        graph = pipeline.workflow_graph
        if pipeline.repo_ref().branch != base and not (
            workflow.start_jobs(graph, f"~pr:{base}")
            or workflow.start_jobs(graph, f"~pr-closed:{base}")
        ):
            continue
        try:
            event = close_pr(
                pipeline=pipeline,
                pr_num=request.number,
                creator=_creator(request.creator),
                delivery_key=delivery_key,
                base_branch=base,
            )
        except PipelineError as exc:
            logger.info("~pr-closed on pipeline %s started nothing: %s", pipeline.pk, exc)
            continue
        if event is not None:
            events.append(event)
    return events
