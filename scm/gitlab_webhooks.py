"""GitLab webhooks: check X-Gitlab-Token, record the delivery once, act on it in the worker."""

from __future__ import annotations

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
    notice_push,
    repo_ref_of,
    start_event,
)
from scm.deliveries import Handler, Received, WebhookRejected, record_delivery, request_number
from scm.gitlab import repo_prefix
from scm.signing import gitlab_hook_token
from scm.webhooks import run_pr_update

logger = logging.getLogger(__name__)

_SKIP_CI_RE = re.compile(r"\[(skip ci|ci skip)\]", re.IGNORECASE)
_NULL_SHA = "0" * 40

PUSH_HOOK = "Push Hook"
TAG_PUSH_HOOK = "Tag Push Hook"
MERGE_REQUEST_HOOK = "Merge Request Hook"
RELEASE_HOOK = "Release Hook"


def verify_gitlab_token(*, header: str | None, project_path: str) -> bool:
    """Return True only when X-Gitlab-Token is the token of the project's hook (constant time)."""
    if not settings.SD_GITLAB_WEBHOOK_TOKEN or not header or not project_path:
        return False
    expected = gitlab_hook_token(project_path)
    return hmac.compare_digest(header.encode("utf-8"), expected.encode("utf-8"))


def _dict(value: object) -> dict[str, Any]:
    """The value when it is a JSON object, else {}: a field of another shape is no field."""
    return value if isinstance(value, dict) else {}


def _action(event_name: str, payload: dict[str, Any]) -> str:
    if event_name == MERGE_REQUEST_HOOK:
        return str(_dict(payload.get("object_attributes")).get("action") or "")[:64]
    if event_name == RELEASE_HOOK:
        return str(payload.get("action") or "")[:64]
    return ""


def _ignored_because(event_name: str, action: str, payload: dict[str, Any]) -> str:
    """Return why a delivery is not acted on, or "" when a handler takes it."""
    if (event_name, action) not in GITLAB_HANDLERS:
        return f"{event_name} {action} is not acted on.".replace("  ", " ").strip()
    # GitLab says "update" for a new title or label as well; only new commits (oldrev) rebuild.
    attributes = _dict(payload.get("object_attributes"))
    if event_name == MERGE_REQUEST_HOOK and action == "update" and not attributes.get("oldrev"):
        return "A merge request update without new commits is not acted on."
    return ""


def receive_gitlab(
    *, body: bytes, token: str | None, event_name: str | None, delivery_id: str | None
) -> Received:
    """Verify and record a GitLab delivery; queue the work unless the event is ignored."""
    if not settings.SD_GITLAB_WEBHOOK_TOKEN:
        raise WebhookRejected(
            "GitLab webhooks are off on this server: set SD_GITLAB_WEBHOOK_TOKEN.", status=403
        )
    refused = WebhookRejected(
        "The X-Gitlab-Token header is missing or is not this project's hook token: set the "
        "hook's secret token to the one `python manage.py sd_gitlab_hook_token GROUP/PROJECT` "
        "prints (creating the pipeline registers the hook with it).",
        status=401,
    )
    if not token:
        raise refused
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise WebhookRejected("The body must be a JSON object.", status=400) from exc
    if not isinstance(payload, dict):
        raise WebhookRejected("The body must be a JSON object.", status=400)
    # Each project's hook has its own token: the one it carries must be the token of the
    # project the payload names, so a token for project X never acts on project Y.
    repository = str(_dict(payload.get("project")).get("path_with_namespace") or "")[:512]
    if not verify_gitlab_token(header=token, project_path=repository):
        raise refused
    if not event_name or not delivery_id or len(delivery_id) > 128 or len(event_name) > 64:
        raise WebhookRejected(
            "X-Gitlab-Event and Idempotency-Key (or X-Gitlab-Event-UUID) headers are required.",
            status=400,
        )
    action = _action(event_name, payload)
    ignored = _ignored_because(event_name, action, payload)
    return record_delivery(
        scm="gitlab",
        delivery_id=delivery_id,
        event_name=event_name,
        action=action,
        repository=repository,
        body=body,
        payload=payload,
        ignored_because=ignored,
    )


# --- acting on a delivery (in the worker, through scm.webhooks.process_delivery) ----------


def _pipelines_of(payload: dict[str, Any]) -> list[Pipeline]:
    """Return the active pipelines of the delivery's project, and of no other."""
    path = str(_dict(payload.get("project")).get("path_with_namespace") or "")
    if not path:
        return []
    return list(
        Pipeline.objects.filter(
            scm_context__startswith="gitlab:",
            state=Pipeline.State.ACTIVE,
            scm_uri__startswith=repo_prefix(path),
        )
    )


def _creator(username: object) -> Creator:
    name = str(username or "gitlab")
    return Creator(name=name, username=name)


def _start(
    pipeline: Pipeline,
    start_from: str,
    sha: str,
    creator: Creator,
    cause: str,
    key: str,
    changed_files: list[str] | None = None,
) -> Event | None:
    try:
        return start_event(
            pipeline=pipeline,
            start_from=start_from,
            creator=creator,
            sha=sha,
            cause_message=cause,
            changed_files=changed_files,
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


def _head_message(payload: dict[str, Any], sha: str) -> str:
    commits = [c for c in payload.get("commits") or [] if isinstance(c, dict)]
    head = next((c for c in commits if c.get("id") == sha), commits[-1] if commits else {})
    return str(head.get("message") or "")


def _changed_files(payload: dict[str, Any]) -> list[str] | None:
    """Every file the push's commits added, modified or removed; None when GitLab left some out."""
    commits = [c for c in payload.get("commits") or [] if isinstance(c, dict)]
    total = payload.get("total_commits_count")
    # GitLab lists at most 20 commits; the files of the others are unknown, so every job runs.
    if not commits or (isinstance(total, int) and total > len(commits)):
        return None
    return sorted(
        {
            str(path)
            for commit in commits
            for key in ("added", "modified", "removed")
            for path in commit.get(key) or []
        }
    )


def handle_push(payload: dict[str, Any], key: str) -> list[Event]:
    """A push to a branch: ~commit on its pipelines, ~commit:branch where others ask for it."""
    ref = str(payload.get("ref") or "")
    sha = str(payload.get("checkout_sha") or "")
    # A deleted branch has no checkout_sha and a null `after`.
    if not ref.startswith("refs/heads/") or not sha or payload.get("after") == _NULL_SHA:
        return []
    if _SKIP_CI_RE.search(_head_message(payload, sha)):
        return []
    branch = ref.removeprefix("refs/heads/")
    creator = _creator(payload.get("user_username"))
    cause = f"Commit {sha[:7]} pushed to {branch} by {creator.username}"
    changed = _changed_files(payload)
    events: list[Event] = []
    for pipeline in _pipelines_of(payload):
        if repo_ref_of(pipeline).branch == branch:
            event = notice_push(
                pipeline=pipeline,
                sha=sha,
                pusher=creator.username,
                changed_files=changed,
                delivery_key=key,
            )
        elif workflow.start_jobs(pipeline.workflow_graph, f"~commit:{branch}"):
            event = _start(pipeline, f"~commit:{branch}", sha, creator, cause, key, changed)
        else:
            event = None
        if event is not None:
            events.append(event)
    return events


def _start_ref(
    payload: dict[str, Any], kind: str, name: str, sha: str, creator: Creator, key: str
) -> list[Event]:
    """~tag or ~release (or their :name forms) on the pipelines of the default branch."""
    default = str(_dict(payload.get("project")).get("default_branch") or "")
    events: list[Event] = []
    for pipeline in _pipelines_of(payload):
        if repo_ref_of(pipeline).branch != default:
            continue
        start_from = _trigger(pipeline.workflow_graph, kind, name)
        if start_from is None:
            continue
        cause = f"{kind.capitalize()} {name} created"
        event = _start(pipeline, start_from, sha, creator, cause, key)
        if event is not None:
            events.append(event)
    return events


def handle_tag_push(payload: dict[str, Any], key: str) -> list[Event]:
    """A tag was pushed: ~tag at the commit it points at; a deleted tag runs nothing."""
    ref = str(payload.get("ref") or "")
    # checkout_sha is the commit even for an annotated tag, whose `after` is the tag object.
    sha = str(payload.get("checkout_sha") or "")
    if not ref.startswith("refs/tags/") or not sha or payload.get("after") == _NULL_SHA:
        return []
    tag = ref.removeprefix("refs/tags/")
    return _start_ref(payload, "tag", tag, sha, _creator(payload.get("user_username")), key)


def handle_release(payload: dict[str, Any], key: str) -> list[Event]:
    """A release was created: ~release (or ~release:tag) at the release's commit."""
    tag = str(payload.get("tag") or "")
    sha = str(_dict(payload.get("commit")).get("id") or "")
    if not tag or not sha:
        return []
    return _start_ref(payload, "release", tag, sha, _creator(None), key)


def _mr_pipelines(payload: dict[str, Any]) -> tuple[list[Pipeline], dict[str, Any], int]:
    attributes = _dict(payload.get("object_attributes"))
    target = str(attributes.get("target_branch") or "")
    pipelines = [p for p in _pipelines_of(payload) if repo_ref_of(p).branch == target]
    # The merge request's iid is its number in the project, what people call !7.
    return pipelines, attributes, request_number(attributes.get("iid"))


def handle_mr_update(payload: dict[str, Any], key: str) -> list[Event]:
    """Opened, reopened or new commits: stop the MR's previous builds, run its ~pr jobs."""
    pipelines, attributes, number = _mr_pipelines(payload)
    sha = str(_dict(attributes.get("last_commit")).get("id") or "")
    if not number or not sha:
        return []
    pr = {
        "title": str(attributes.get("title") or "")[:512],
        "url": str(attributes.get("url") or ""),
        "ref": str(attributes.get("source_branch") or ""),
        "fork": attributes.get("source_project_id") != attributes.get("target_project_id"),
    }
    creator = _creator(_dict(payload.get("user")).get("username"))
    if attributes.get("action") == "open":
        # Only the opener is surely the author (an update's user is whoever pushed); the
        # author may restart an unrestricted PR without push rights, as in Screwdriver.
        pr["username"] = creator.username
    return run_pr_update(
        pipelines=pipelines,
        number=number,
        sha=sha,
        pr=pr,
        creator=creator,
        what=f"Merge request !{number}",
        delivery_key=key,
    )


def handle_mr_closed(payload: dict[str, Any], key: str) -> list[Event]:
    """Closed or merged: abort the MR's builds, archive its jobs, run ~pr-closed."""
    pipelines, _, number = _mr_pipelines(payload)
    creator = _creator(_dict(payload.get("user")).get("username"))
    events: list[Event] = []
    for pipeline in pipelines if number else []:
        try:
            event = close_pr(pipeline=pipeline, pr_num=number, creator=creator, delivery_key=key)
        except PipelineError as exc:
            logger.info("~pr-closed on pipeline %s started nothing: %s", pipeline.pk, exc)
            continue
        if event is not None:
            events.append(event)
    return events


# (X-Gitlab-Event, action) -> handler; "" matches hooks without an action. Anything else is ignored.
GITLAB_HANDLERS: dict[tuple[str, str], Handler] = {
    (PUSH_HOOK, ""): handle_push,
    (TAG_PUSH_HOOK, ""): handle_tag_push,
    (RELEASE_HOOK, "create"): handle_release,
    (MERGE_REQUEST_HOOK, "open"): handle_mr_update,
    (MERGE_REQUEST_HOOK, "reopen"): handle_mr_update,
    (MERGE_REQUEST_HOOK, "update"): handle_mr_update,
    (MERGE_REQUEST_HOOK, "close"): handle_mr_closed,
    (MERGE_REQUEST_HOOK, "merge"): handle_mr_closed,
}
