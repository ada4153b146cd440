"""GitLab webhooks: check X-Gitlab-Token, record the delivery once, translate its payload."""

from __future__ import annotations

import hmac
import json
import re
from typing import Any

from django.conf import settings

from scm.deliveries import Received, WebhookRejected, record_delivery, request_number
from scm.gitlab import repo_prefix
from scm.signing import gitlab_hook_token
from scm.webhooks.actions import (
    Action,
    PullRequestClosed,
    PullRequestUpdated,
    Push,
    RefCreated,
    Repository,
    Translator,
)

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
    """Return why a delivery is not acted on, or "" when a translator takes it."""
    if (event_name, action) not in GITLAB_TRANSLATORS:
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


# --- what a delivery asks for (in the worker, through scm.webhooks.process_delivery) -----


def _repository(payload: dict[str, Any]) -> Repository | None:
    path = str(_dict(payload.get("project")).get("path_with_namespace") or "")
    return Repository(scm="gitlab", uri_prefix=repo_prefix(path)) if path else None


def _username(value: object) -> str:
    return str(value or "gitlab")


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


def translate_push(payload: dict[str, Any]) -> Action | None:
    """A push to a branch: ~commit on its pipelines, ~commit:branch where others ask for it."""
    ref = str(payload.get("ref") or "")
    sha = str(payload.get("checkout_sha") or "")
    # A deleted branch has no checkout_sha and a null `after`.
    if not ref.startswith("refs/heads/") or not sha or payload.get("after") == _NULL_SHA:
        return None
    if _SKIP_CI_RE.search(_head_message(payload, sha)):
        return None
    repository = _repository(payload)
    if repository is None:
        return None
    return Push(
        repository=repository,
        branch=ref.removeprefix("refs/heads/"),
        sha=sha,
        pusher=_username(payload.get("user_username")),
        changed_files=_changed_files(payload),
    )


def _ref_created(
    payload: dict[str, Any], kind: str, name: str, sha: str, creator: str
) -> Action | None:
    """~tag or ~release (or their :name forms) on the pipelines of the default branch."""
    repository = _repository(payload)
    if repository is None:
        return None
    return RefCreated(
        repository=repository,
        kind=kind,
        name=name,
        sha=sha,
        default_branch=str(_dict(payload.get("project")).get("default_branch") or ""),
        creator=creator,
    )


def translate_tag_push(payload: dict[str, Any]) -> Action | None:
    """A tag was pushed: ~tag at the commit it points at; a deleted tag runs nothing."""
    ref = str(payload.get("ref") or "")
    # checkout_sha is the commit even for an annotated tag, whose `after` is the tag object.
    sha = str(payload.get("checkout_sha") or "")
    if not ref.startswith("refs/tags/") or not sha or payload.get("after") == _NULL_SHA:
        return None
    tag = ref.removeprefix("refs/tags/")
    return _ref_created(payload, "tag", tag, sha, _username(payload.get("user_username")))


def translate_release(payload: dict[str, Any]) -> Action | None:
    """A release was created: ~release (or ~release:tag) at the release's commit."""
    tag = str(payload.get("tag") or "")
    sha = str(_dict(payload.get("commit")).get("id") or "")
    if not tag or not sha:
        return None
    return _ref_created(payload, "release", tag, sha, _username(None))


def _merge_request(payload: dict[str, Any]) -> tuple[dict[str, Any], str, int]:
    attributes = _dict(payload.get("object_attributes"))
    target = str(attributes.get("target_branch") or "")
    # The merge request's iid is its number in the project, what people call !7.
    return attributes, target, request_number(attributes.get("iid"))


def translate_mr_update(payload: dict[str, Any]) -> Action | None:
    """Opened, reopened or new commits: stop the MR's previous builds, run its ~pr jobs."""
    attributes, target, number = _merge_request(payload)
    sha = str(_dict(attributes.get("last_commit")).get("id") or "")
    repository = _repository(payload)
    if not number or not sha or repository is None:
        return None
    creator = _username(_dict(payload.get("user")).get("username"))
    return PullRequestUpdated(
        repository=repository,
        base_branch=target,
        number=number,
        sha=sha,
        title=str(attributes.get("title") or "")[:512],
        url=str(attributes.get("url") or ""),
        source_branch=str(attributes.get("source_branch") or ""),
        fork=attributes.get("source_project_id") != attributes.get("target_project_id"),
        # Only the opener is surely the author: an update's user is whoever pushed.
        author=creator if attributes.get("action") == "open" else None,
        creator=creator,
        label=f"Merge request !{number}",
    )


def translate_mr_closed(payload: dict[str, Any]) -> Action | None:
    """Closed or merged: abort the MR's builds, archive its jobs, run ~pr-closed."""
    _, target, number = _merge_request(payload)
    repository = _repository(payload)
    if not number or repository is None:
        return None
    creator = _username(_dict(payload.get("user")).get("username"))
    return PullRequestClosed(
        repository=repository, base_branch=target, number=number, creator=creator
    )


# (X-Gitlab-Event, action) -> translator; "" matches hooks without an action. Anything else
# is ignored.
GITLAB_TRANSLATORS: dict[tuple[str, str], Translator] = {
    (PUSH_HOOK, ""): translate_push,
    (TAG_PUSH_HOOK, ""): translate_tag_push,
    (RELEASE_HOOK, "create"): translate_release,
    (MERGE_REQUEST_HOOK, "open"): translate_mr_update,
    (MERGE_REQUEST_HOOK, "reopen"): translate_mr_update,
    (MERGE_REQUEST_HOOK, "update"): translate_mr_update,
    (MERGE_REQUEST_HOOK, "close"): translate_mr_closed,
    (MERGE_REQUEST_HOOK, "merge"): translate_mr_closed,
}
