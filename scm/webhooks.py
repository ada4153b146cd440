"""GitHub webhooks: verify a delivery and record it; the handlers of its dispatch table."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from typing import Any

from django.conf import settings

from pipelines import workflow
from pipelines.models import Event, Pipeline
from pipelines.services import (
    Creator,
    PipelineError,
    close_pr,
    event_of_delivery,
    notice_push,
    repo_ref_of,
    start_event,
    start_pr_event,
    stop_pr_builds,
)
from pipelines.services.pull_requests import changed_files_of_pr, restricted_pr_message
from scm.deliveries import Handler, Received, WebhookRejected, record_delivery, request_number
from scm.github import GitHubScm, repo_prefix

logger = logging.getLogger(__name__)

_SIGNATURE_RE = re.compile(r"sha256=([0-9a-f]{64})", re.ASCII)
_SKIP_CI_RE = re.compile(r"\[(skip ci|ci skip)\]", re.IGNORECASE)
_NULL_SHA = "0" * 40


def verify_github_signature(*, body: bytes, header: str | None, secret: str) -> bool:
    """Return True only for a valid X-Hub-Signature-256 of body; sha1 and junk never pass."""
    if not secret or not header:
        return False
    match = _SIGNATURE_RE.fullmatch(header.strip())
    if match is None:
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), match.group(1).encode("ascii"))


def receive_github(
    *, body: bytes, signature: str | None, event_name: str | None, delivery_id: str | None
) -> Received:
    """Verify and record a GitHub delivery; queue the work unless the event is ignored."""
    if not settings.SD_GITHUB_WEBHOOK_SECRET:
        raise WebhookRejected(
            "GitHub webhooks are off on this server: set SD_GITHUB_WEBHOOK_SECRET.", status=403
        )
    if not verify_github_signature(
        body=body, header=signature, secret=settings.SD_GITHUB_WEBHOOK_SECRET
    ):
        raise WebhookRejected(
            "The X-Hub-Signature-256 header is missing or does not match the body.", status=401
        )
    if not event_name or not delivery_id or len(delivery_id) > 128 or len(event_name) > 64:
        raise WebhookRejected(
            "X-GitHub-Event and X-GitHub-Delivery headers are required.", status=400
        )
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise WebhookRejected("The body must be a JSON object.", status=400) from exc
    if not isinstance(payload, dict):
        raise WebhookRejected("The body must be a JSON object.", status=400)
    action = str(payload.get("action") or "")[:64]
    repository = str((payload.get("repository") or {}).get("full_name") or "")[:512]
    handled = (event_name, action) in GITHUB_HANDLERS or (event_name, "") in GITHUB_HANDLERS
    return record_delivery(
        scm="github",
        delivery_id=delivery_id,
        event_name=event_name,
        action=action,
        repository=repository,
        body=body,
        payload=payload,
        ignored_because="" if handled else f"{event_name} {action} is not acted on.".strip(),
    )


# --- acting on a delivery (in the worker, through scm.tasks.process_delivery) ------------


def _pipelines_of(payload: dict[str, Any]) -> list[Pipeline]:
    """Return the active pipelines of the delivery's repository, and of no other."""
    full_name = str((payload.get("repository") or {}).get("full_name") or "")
    if not full_name:
        return []
    prefix = repo_prefix(full_name)
    return list(
        Pipeline.objects.filter(
            scm_context__startswith="github:",
            state=Pipeline.State.ACTIVE,
            scm_uri__startswith=prefix,
        )
    )


def _sender(payload: dict[str, Any]) -> Creator:
    login = str((payload.get("sender") or {}).get("login") or "github")
    return Creator(name=login, username=login)


def _start(
    pipeline: Pipeline, start_from: str, sha: str, creator: Creator, cause: str, key: str
) -> Event | None:
    try:
        return start_event(
            pipeline=pipeline,
            start_from=start_from,
            creator=creator,
            sha=sha,
            cause_message=cause,
            delivery_key=key,
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


def handle_push(payload: dict[str, Any], key: str) -> list[Event]:
    """A push to a branch: ~commit on its pipelines, ~commit:branch where others ask for it."""
    ref = str(payload.get("ref") or "")
    sha = str(payload.get("after") or "")
    # Tags arrive as `create` deliveries too; acting on both would run ~tag twice.
    if not ref.startswith("refs/heads/") or payload.get("deleted") or sha == _NULL_SHA:
        return []
    message = str((payload.get("head_commit") or {}).get("message") or "")
    if _SKIP_CI_RE.search(message):
        return []
    branch = ref.removeprefix("refs/heads/")
    creator = _sender(payload)
    cause = f"Commit {sha[:7]} pushed to {branch} by {creator.username}"
    # What the push changed, for sourcePaths: every file its commits added, modified or removed.
    commits = payload.get("commits")
    changed: list[str] | None = None
    if isinstance(commits, list) and commits:
        changed = sorted(
            {
                str(path)
                for commit in commits
                if isinstance(commit, dict)
                for key in ("added", "modified", "removed")
                for path in commit.get(key) or []
            }
        )
    events: list[Event] = []
    for pipeline in _pipelines_of(payload):
        event: Event | None = None
        if repo_ref_of(pipeline).branch == branch:
            event = notice_push(
                pipeline=pipeline,
                sha=sha,
                pusher=creator.username,
                changed_files=changed,
                delivery_key=key,
            )
        elif workflow.start_jobs(pipeline.workflow_graph, f"~commit:{branch}"):
            try:
                event = start_event(
                    pipeline=pipeline,
                    start_from=f"~commit:{branch}",
                    creator=creator,
                    sha=sha,
                    cause_message=cause,
                    changed_files=changed,
                    delivery_key=key,
                )
            except PipelineError as exc:
                logger.info(
                    "~commit:%s on %s started nothing: %s", branch, pipeline.pk, exc.message
                )
        if event is not None:
            events.append(event)
    return events


def _on_default_branch(payload: dict[str, Any]) -> list[Pipeline]:
    default = str((payload.get("repository") or {}).get("default_branch") or "")
    return [p for p in _pipelines_of(payload) if repo_ref_of(p).branch == default]


def _start_ref(payload: dict[str, Any], kind: str, tag: str, key: str) -> list[Event]:
    events: list[Event] = []
    creator = _sender(payload)
    for pipeline in _on_default_branch(payload):
        start_from = _trigger(pipeline.workflow_graph, kind, tag)
        if start_from is None:
            continue
        sha = GitHubScm().commit_sha(repo_ref_of(pipeline), f"tags/{tag}")
        cause = f"{kind.capitalize()} {tag} created"
        event = _start(pipeline, start_from, sha, creator, cause, key)
        if event is not None:
            events.append(event)
    return events


def handle_create(payload: dict[str, Any], key: str) -> list[Event]:
    """A tag was created: ~tag (or ~tag:name) on the pipelines of the default branch."""
    if payload.get("ref_type") != "tag":
        return []
    return _start_ref(payload, "tag", str(payload.get("ref") or ""), key)


def handle_release(payload: dict[str, Any], key: str) -> list[Event]:
    """A release was published: ~release (or ~release:tag) on the default branch's pipelines."""
    tag = str((payload.get("release") or {}).get("tag_name") or "")
    return _start_ref(payload, "release", tag, key) if tag else []


class Handled(list[Event]):
    """The events a handler started, with notes on what it chose not to start and why."""

    def __init__(self, events: list[Event] | None = None, notes: list[str] | None = None) -> None:
        super().__init__(events or [])
        self.notes: list[str] = list(notes or [])


def _pr_pipelines(payload: dict[str, Any]) -> tuple[list[Pipeline], dict[str, Any], int]:
    pull = payload.get("pull_request") or {}
    base = str((pull.get("base") or {}).get("ref") or "")
    pipelines = [p for p in _pipelines_of(payload) if repo_ref_of(p).branch == base]
    return pipelines, pull, request_number(payload.get("number") or pull.get("number"))


def handle_pr_update(payload: dict[str, Any], key: str) -> list[Event]:
    """Opened, reopened or synchronized: stop the PR's previous builds, run its ~pr jobs."""
    pipelines, pull, number = _pr_pipelines(payload)
    head = pull.get("head") or {}
    sha = str(head.get("sha") or "")
    if not number or not sha:
        return []
    base_repo = ((pull.get("base") or {}).get("repo") or {}).get("full_name")
    pr = {
        "title": str(pull.get("title") or "")[:512],
        "url": str(pull.get("html_url") or ""),
        "ref": str(head.get("ref") or ""),
        "fork": (head.get("repo") or {}).get("full_name") != base_repo,
        # The author may restart an unrestricted PR without push rights, as in Screwdriver.
        "username": str((pull.get("user") or {}).get("login") or ""),
    }
    return run_pr_update(
        pipelines=pipelines,
        number=number,
        sha=sha,
        pr=pr,
        creator=_sender(payload),
        what=f"Pull request {number}",
        delivery_key=key,
    )


def run_pr_update(
    *,
    pipelines: list[Pipeline],
    number: int,
    sha: str,
    pr: dict[str, Any],
    creator: Creator,
    what: str,
    delivery_key: str,
) -> Handled:
    """A pull (or merge) request got new commits: stop its builds, run its ~pr jobs anew.

    Shared by every SCM's handler; ``what`` names the request in messages. A pipeline where
    this delivery already started its event (a worker died after) is left as it is.
    """
    events = Handled()
    changed: tuple[list[str] | None, str] | None = None
    for pipeline in pipelines:
        done = event_of_delivery(pipeline=pipeline, delivery_key=delivery_key)
        if done is not None:
            events.append(done)
            continue
        stop_pr_builds(pipeline=pipeline, pr_num=number, message=f"{what} was updated")
        # The restriction is the base branch's (the pipeline's), never the request's own file.
        skipped = restricted_pr_message(pipeline=pipeline, fork=bool(pr["fork"]))
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
                sha=sha,
                creator=creator,
                pr=pr,
                changed_files=changed[0],
                delivery_key=delivery_key,
            )
        except PipelineError as exc:
            logger.info("%s on pipeline %s started nothing: %s", what, pipeline.pk, exc)
            events.notes.append(exc.message)
            continue
        if event is not None:
            events.append(event)
    return events


def handle_pr_closed(payload: dict[str, Any], key: str) -> list[Event]:
    """Closed (merged or not): abort the PR's builds, archive its jobs, run ~pr-closed."""
    pipelines, _, number = _pr_pipelines(payload)
    events: list[Event] = []
    for pipeline in pipelines if number else []:
        try:
            event = close_pr(
                pipeline=pipeline, pr_num=number, creator=_sender(payload), delivery_key=key
            )
        except PipelineError as exc:
            logger.info("~pr-closed on pipeline %s started nothing: %s", pipeline.pk, exc)
            continue
        if event is not None:
            events.append(event)
    return events


# (event, action) -> handler; "" matches events without an action. Anything else is ignored.
GITHUB_HANDLERS: dict[tuple[str, str], Handler] = {
    ("push", ""): handle_push,
    ("create", ""): handle_create,
    ("release", "published"): handle_release,
    ("pull_request", "opened"): handle_pr_update,
    ("pull_request", "reopened"): handle_pr_update,
    ("pull_request", "synchronize"): handle_pr_update,
    ("pull_request", "closed"): handle_pr_closed,
}
