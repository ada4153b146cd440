"""GitHub webhooks: verify a delivery and record it; translate its payload into an action."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

from django.conf import settings

from scm.deliveries import Received, WebhookRejected, record_delivery, request_number
from scm.github import repo_prefix
from scm.webhooks.actions import (
    Action,
    PullRequestClosed,
    PullRequestUpdated,
    Push,
    RefCreated,
    Repository,
    Translator,
)

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
    handled = (event_name, action) in GITHUB_TRANSLATORS or (event_name, "") in GITHUB_TRANSLATORS
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


# --- what a delivery asks for (in the worker, through scm.webhooks.process_delivery) -----


def _repository(payload: dict[str, Any]) -> Repository | None:
    full_name = str((payload.get("repository") or {}).get("full_name") or "")
    return Repository(scm="github", uri_prefix=repo_prefix(full_name)) if full_name else None


def _sender(payload: dict[str, Any]) -> str:
    return str((payload.get("sender") or {}).get("login") or "github")


def translate_push(payload: dict[str, Any]) -> Action | None:
    """A push to a branch: ~commit on its pipelines, ~commit:branch where others ask for it."""
    ref = str(payload.get("ref") or "")
    sha = str(payload.get("after") or "")
    # Tags arrive as `create` deliveries too; acting on both would run ~tag twice.
    if not ref.startswith("refs/heads/") or payload.get("deleted") or sha == _NULL_SHA:
        return None
    message = str((payload.get("head_commit") or {}).get("message") or "")
    if _SKIP_CI_RE.search(message):
        return None
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
    repository = _repository(payload)
    if repository is None:
        return None
    return Push(
        repository=repository,
        branch=ref.removeprefix("refs/heads/"),
        sha=sha,
        pusher=_sender(payload),
        changed_files=changed,
        url=str((payload.get("head_commit") or {}).get("url") or ""),
    )


def _ref_created(payload: dict[str, Any], kind: str, name: str) -> Action | None:
    repository = _repository(payload)
    if repository is None:
        return None
    return RefCreated(
        repository=repository,
        kind=kind,
        name=name,
        sha="",  # GitHub names the tag only: its commit is looked up per pipeline.
        default_branch=str((payload.get("repository") or {}).get("default_branch") or ""),
        creator=_sender(payload),
    )


def translate_create(payload: dict[str, Any]) -> Action | None:
    """A tag was created: ~tag (or ~tag:name) on the pipelines of the default branch."""
    if payload.get("ref_type") != "tag":
        return None
    return _ref_created(payload, "tag", str(payload.get("ref") or ""))


def translate_release(payload: dict[str, Any]) -> Action | None:
    """A release was published: ~release (or ~release:tag) on the default branch's pipelines."""
    tag = str((payload.get("release") or {}).get("tag_name") or "")
    return _ref_created(payload, "release", tag) if tag else None


def _pull(payload: dict[str, Any]) -> tuple[dict[str, Any], str, int]:
    pull = payload.get("pull_request") or {}
    base = str((pull.get("base") or {}).get("ref") or "")
    return pull, base, request_number(payload.get("number") or pull.get("number"))


def translate_pr_update(payload: dict[str, Any]) -> Action | None:
    """Opened, reopened or synchronized: stop the PR's previous builds, run its ~pr jobs."""
    pull, base, number = _pull(payload)
    head = pull.get("head") or {}
    sha = str(head.get("sha") or "")
    repository = _repository(payload)
    if not number or not sha or repository is None:
        return None
    base_repo = ((pull.get("base") or {}).get("repo") or {}).get("full_name")
    return PullRequestUpdated(
        repository=repository,
        base_branch=base,
        number=number,
        sha=sha,
        title=str(pull.get("title") or "")[:512],
        url=str(pull.get("html_url") or ""),
        source_branch=str(head.get("ref") or ""),
        fork=(head.get("repo") or {}).get("full_name") != base_repo,
        author=str((pull.get("user") or {}).get("login") or ""),
        creator=_sender(payload),
        label=f"Pull request {number}",
    )


def translate_pr_closed(payload: dict[str, Any]) -> Action | None:
    """Closed (merged or not): abort the PR's builds, archive its jobs, run ~pr-closed."""
    _, base, number = _pull(payload)
    repository = _repository(payload)
    if not number or repository is None:
        return None
    return PullRequestClosed(
        repository=repository, base_branch=base, number=number, creator=_sender(payload)
    )


# (event, action) -> translator; "" matches events without an action. Anything else is ignored.
GITHUB_TRANSLATORS: dict[tuple[str, str], Translator] = {
    ("push", ""): translate_push,
    ("create", ""): translate_create,
    ("release", "published"): translate_release,
    ("pull_request", "opened"): translate_pr_update,
    ("pull_request", "reopened"): translate_pr_update,
    ("pull_request", "synchronize"): translate_pr_update,
    ("pull_request", "closed"): translate_pr_closed,
}
