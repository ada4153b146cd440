"""Noticing pushes to local repositories: the signed post-receive hook, and polling."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from pipelines.models import Event, Pipeline
from pipelines.services import notice_push, scm_for, start_subscribers
from pipelines.services.fan_out import subscribers_of
from scm.base import ScmError
from scm.signing import repository_key, verify

logger = logging.getLogger(__name__)


class HookRejected(Exception):
    """A hook delivery that is not signed for the repository it names."""


@dataclass(frozen=True)
class HookOutcome:
    events: list[int]


def handle_local_hook(*, body: bytes, signature: str | None) -> HookOutcome:
    """Verify a post-receive notification and start ~commit for each pipeline on a pushed branch."""
    try:
        payload = json.loads(body)
        repository = payload["repository"]
        refs = payload["refs"]
    except (ValueError, KeyError, TypeError) as exc:
        raise HookRejected("The body must be JSON with repository and refs.") from exc
    if not isinstance(repository, str) or not isinstance(refs, list):
        raise HookRejected("The body must be JSON with repository and refs.")
    # The key is derived from the repository path, so a hook can only speak for its own repo.
    if not verify(body, repository_key(repository), signature):
        raise HookRejected("The signature does not match this repository.")
    events = []
    pipelines = Pipeline.objects.filter(
        scm_context="local", state=Pipeline.State.ACTIVE, scm_uri__startswith=f"local:{repository}:"
    )
    for pipeline in pipelines:
        try:
            ref = pipeline.repo_ref()
        except ScmError:
            continue
        if ref.repo_path != repository:
            continue
        pushed_shas = {
            str(pushed.get("after", ""))
            for pushed in refs
            if isinstance(pushed, dict) and pushed.get("ref") == f"refs/heads/{ref.branch}"
        }
        if not pushed_shas:
            continue
        # Act on the branch's head as the repository has it now, never on the sha in the body:
        # a replayed or late delivery then cannot start an old commit again.
        try:
            head = scm_for(pipeline).head_sha(ref)
        except ScmError:
            continue
        if head in pushed_shas:
            event = notice_push(pipeline=pipeline, sha=head)
            if event is not None:
                events.append(event.pk)
    events += [e.pk for e in _start_subscribers(repository, refs)]
    return HookOutcome(events=events)


def _start_subscribers(repository: str, refs: list[Any]) -> list[Event]:
    """`~subscribe` on the pipelines that subscribe to a pushed branch of this repository."""
    started: list[Event] = []
    prefix = f"local:{repository}:"
    for pushed in refs:
        name = str(pushed.get("ref", "")) if isinstance(pushed, dict) else ""
        if not name.startswith("refs/heads/"):
            continue
        branch = name.removeprefix("refs/heads/")
        if not subscribers_of(uri_prefix=prefix, branch=branch, action="commit"):
            continue
        # As for the repository's own pipelines: the head as it is now, not the body's sha.
        try:
            scm = scm_for(repository)
            head = scm.head_sha(scm.parse_url(f"{repository}#{branch}"))
        except ScmError as exc:
            logger.warning("Cannot read %s of %s for its subscribers: %s", branch, repository, exc)
            continue
        if head != str(pushed.get("after", "")):
            continue
        started += start_subscribers(
            uri_prefix=prefix, branch=branch, sha=head, source_url="", pusher=""
        )
    return started


def poll_all() -> int:
    """Start ~commit for every local pipeline whose branch head moved since we last looked."""
    started = 0
    for pipeline in Pipeline.objects.filter(scm_context="local", state=Pipeline.State.ACTIVE):
        try:
            head = scm_for(pipeline).head_sha(pipeline.repo_ref())
        except ScmError as exc:
            logger.warning("Cannot poll pipeline %s: %s", pipeline.pk, exc)
            continue
        if head != pipeline.last_seen_sha and notice_push(pipeline=pipeline, sha=head):
            started += 1
    return started
