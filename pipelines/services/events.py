"""Events: what starts a pipeline's jobs, from a push, a person or the API."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, transaction

from builds import services as build_services
from pipelines import source_paths, workflow
from pipelines.models import Event, Job, Pipeline
from pipelines.services.children import has_children, sync_child_pipelines
from pipelines.services.pipelines import (
    PipelineError,
    config_source,
    read_config,
    scm_for,
    sync_jobs,
)
from scm.base import CommitInfo, ScmError
from scm.local import LocalGitScm

logger = logging.getLogger(__name__)

_TAG_OR_RELEASE_RE = re.compile(r"~(tag|release)(:|$)")

# --- events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Creator:
    """Who or what started an event, in Screwdriver's user shape."""

    name: str
    username: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "username": self.username}


def creator_of(user: AbstractBaseUser | AnonymousUser) -> Creator:
    """Who starts an event: a person by their full name, a pipeline or build by its token's name."""
    full_name = getattr(user, "get_full_name", None)
    username = user.get_username()
    return Creator(name=(full_name() if full_name else "") or username, username=username)


def _with_parameters(meta: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The event's meta with ``parameters`` resolved against the ones the config declares."""
    jobs = {
        name: (perms[0].get("parameters") or {}) if perms else {}
        for name, perms in (config.get("jobs") or {}).items()
    }
    if not config.get("parameters") and not any(jobs.values()) and "parameters" not in meta:
        return meta
    chosen = meta.get("parameters")
    params = workflow.event_parameters(
        pipeline_parameters=config.get("parameters") or {},
        job_parameters=jobs,
        chosen=chosen if isinstance(chosen, dict) else {},
    )
    return {**meta, "parameters": params}


def commit_json(commit: CommitInfo) -> dict[str, Any]:
    """A commit in Screwdriver's event shape."""
    person = {"name": commit.author_name, "username": commit.author_email, "url": ""}
    return {"url": commit.url, "message": commit.message, "author": person, "committer": person}


def _concerned(
    names: list[str],
    config: dict[str, Any],
    root_dir: str,
    changed_files: Sequence[str],
    start_from: str,
) -> list[str]:
    """The first jobs whose `sourcePaths` (or the pipeline's root directory) a change touches;
    none when it touches nothing under the root directory."""
    if _TAG_OR_RELEASE_RE.match(start_from):
        # A tag or release is not a change to files: Screwdriver runs its jobs regardless.
        return names
    kept = source_paths.concerned_jobs(names, config.get("jobs") or {}, root_dir, changed_files)
    if not kept and not source_paths.touches_root_dir(changed_files, root_dir):
        raise PipelineError(
            f"No changed file is under the pipeline's root directory {root_dir}, so nothing "
            "ran; change a file there, or start the job by hand.",
            status=422,
        )
    if not kept:
        raise PipelineError(
            f"No job that starts from {start_from} has a sourcePaths entry that the changed "
            "files match, so nothing ran; change a file under one, or start the job by hand.",
            status=422,
        )
    return kept


def event_of_delivery(*, pipeline: Pipeline, delivery_key: str | None) -> Event | None:
    """The event a webhook delivery already started on `pipeline`, if any."""
    if not delivery_key:
        return None
    return Event.objects.filter(pipeline=pipeline, delivery_key=delivery_key).first()


def once_per_delivery(
    *, pipeline: Pipeline, delivery_key: str | None, create: Callable[[], Event]
) -> Event:
    """Create an event; when a concurrent run of the same delivery made it first, return that."""
    try:
        return create()
    except IntegrityError:
        done = event_of_delivery(pipeline=pipeline, delivery_key=delivery_key)
        if done is None:
            raise
        return done


@dataclass(frozen=True)
class Checkout:
    """What the SCM said of one commit of a pipeline's branch (or of the branch a ~commit:branch
    event is for): the commit and the config that speaks for it.

    ``at_head`` is whether the commit is the branch head: only the head's file may change the
    pipeline's jobs, stages and settings.
    """

    sha: str
    branch: str
    commit: CommitInfo
    config: dict[str, Any]
    at_head: bool
    # A child pipeline's config comes from its parent: the parent's sha it was read at.
    config_pipeline_sha: str = ""


@dataclass(frozen=True)
class Subscribed:
    """The commit of a subscribed repository that started a `~subscribe` event."""

    sha: str
    source_url: str


def start_event(
    *,
    pipeline: Pipeline,
    start_from: str,
    creator: Creator,
    sha: str | None = None,
    cause_message: str = "",
    parent_event: Event | None = None,
    meta: dict[str, Any] | None = None,
    changed_files: Sequence[str] | None = None,
    delivery_key: str | None = None,
    job_names: Sequence[str] | None = None,
    branch: str | None = None,
    subscribed: Subscribed | None = None,
) -> Event:
    """Create an event at `sha` (default: the branch head); queue the jobs `start_from` selects.

    `job_names`, when given, are the jobs that run first instead (a restart of several jobs at
    once, with `start_from` naming what chose them).

    `branch`, when it is not the pipeline's own, is the branch `sha` was pushed to (an event
    `~commit:branch` started): as in Screwdriver, the jobs and the workflow come from the
    screwdriver.yaml at the pipeline's branch head, and the builds check out `branch` at `sha`.

    `changed_files` is given only for what a push or pull request started (None when the SCM
    could not say): then a first job with `sourcePaths` runs only when a changed file concerns
    it, as in Screwdriver, which ignores `sourcePaths` for manual starts and restarts.
    `delivery_key` names the webhook delivery that asks: asked again, it gets the same event.
    """
    done = event_of_delivery(pipeline=pipeline, delivery_key=delivery_key)
    if done is not None:
        return done
    _require_active(pipeline)
    scm = scm_for(pipeline)
    # The branch head as last noticed; a start without a sha reads the head afresh.
    head = Pipeline.objects.filter(pk=pipeline.pk).values_list("last_seen_sha", flat=True).first()
    try:
        ref = pipeline.repo_ref()
        other = branch if branch and branch != ref.branch else None
        if other is None:
            at_head = sha is None or sha == head
            sha = config_sha = sha or scm.head_sha(ref)
        else:
            config_sha = scm.head_sha(ref)
            at_head = config_sha == head
            sha = sha or scm.head_sha(replace(ref, branch=other))
        commit = scm.commit_info(ref, sha)
    except ScmError as exc:
        raise PipelineError(str(exc), status=422) from exc
    config_ref, parent_sha = ref, ""
    if pipeline.config_pipeline_id:
        # A child runs the jobs of its parent's file at the parent's branch head.
        config_ref, config_sha = config_source(pipeline)
        parent_sha = config_sha
    checkout = Checkout(
        sha=sha,
        branch=other or ref.branch,
        commit=commit,
        config=read_config(config_ref, config_sha),
        at_head=at_head,
        config_pipeline_sha=parent_sha,
    )
    return start_event_at(
        pipeline=pipeline,
        checkout=checkout,
        start_from=start_from,
        creator=creator,
        cause_message=cause_message,
        parent_event=parent_event,
        meta=meta,
        changed_files=changed_files,
        delivery_key=delivery_key,
        job_names=job_names,
        subscribed=subscribed,
    )


def _require_active(pipeline: Pipeline) -> None:
    if pipeline.state != Pipeline.State.ACTIVE:
        raise PipelineError(
            f"Pipeline {pipeline.pk} is {pipeline.state.lower()}: make it ACTIVE to start events.",
            status=409,
        )


def start_event_at(
    *,
    pipeline: Pipeline,
    checkout: Checkout,
    start_from: str,
    creator: Creator,
    cause_message: str = "",
    parent_event: Event | None = None,
    meta: dict[str, Any] | None = None,
    changed_files: Sequence[str] | None = None,
    delivery_key: str | None = None,
    job_names: Sequence[str] | None = None,
    subscribed: Subscribed | None = None,
) -> Event:
    """Create the event of a commit the SCM has already been read for; see `start_event`."""
    done = event_of_delivery(pipeline=pipeline, delivery_key=delivery_key)
    if done is not None:
        return done
    _require_active(pipeline)
    config = checkout.config
    graph = config.get("workflowGraph", {})
    errors = list(config.get("errors", []))
    if errors:
        # A broken file runs its one failing job whatever was asked, so the event says why.
        start_from = next(iter(config.get("jobs", {"main": []})))
    chosen = list(job_names) if job_names is not None and not errors else None
    try:
        if chosen is None:
            names = workflow.start_jobs(graph, start_from)
        else:
            names = list(
                dict.fromkeys(n for name in chosen for n in workflow.start_jobs(graph, name))
            )
    except ValueError as exc:
        what = start_from if chosen is None else ", ".join(chosen)
        raise PipelineError(
            f"{what} is not a job or trigger of this commit's screwdriver.yaml.", status=404
        ) from exc
    if not names:
        raise PipelineError(f"No job of this pipeline starts from {start_from}.", status=404)
    meta = dict(meta or {})
    if changed_files is not None:
        names = _concerned(names, config, pipeline.root_dir, changed_files, start_from)
        meta["commit"] = {**(meta.get("commit") or {}), "changedFiles": ",".join(changed_files)}

    def create() -> Event:
        with transaction.atomic():
            # Only the head's file speaks for the pipeline (annotations, graph, stages, ...).
            sync_jobs(pipeline=pipeline, config=config, at_head=checkout.at_head)
            event = Event.objects.create(
                pipeline=pipeline,
                parent_event=parent_event,
                cause_message=(cause_message or f"Started by {creator.username}")[:512],
                commit=commit_json(checkout.commit),
                creator=creator.as_dict(),
                sha=checkout.sha,
                config_pipeline_sha=checkout.config_pipeline_sha,
                subscribed_event=subscribed is not None,
                subscribed_config_sha=subscribed.sha if subscribed else "",
                subscribed_source_url=(subscribed.source_url if subscribed else "")[:1024],
                start_from=start_from,
                restart_jobs=names if chosen is not None else [],
                base_branch=checkout.branch,
                meta=_with_parameters(meta, config),
                workflow_graph=graph,
                job_configs=config.get("jobs", {}),
                config_errors=errors,
                status=Event.Status.CREATED,
                delivery_key=delivery_key,
            )
            builds = build_services.create_start_builds(
                event=event, job_names=names, cause=event.cause_message
            )
            if not builds:
                if Job.objects.filter(pipeline=pipeline, name__in=names, archived=True).exists():
                    # An older commit's job that the head's file has since dropped stays
                    # archived.
                    raise PipelineError(
                        f"Every job that starts from {start_from} is disabled or gone from the "
                        "branch head's screwdriver.yaml: enable one, or start from a job it has.",
                        status=422,
                    )
                raise PipelineError(
                    f"Every job that starts from {start_from} is disabled: enable one first.",
                    status=422,
                )
            build_services.refresh_event_status(event=event)
            Pipeline.objects.filter(pk=pipeline.pk).update(last_event=event)
        return event

    event = once_per_delivery(pipeline=pipeline, delivery_key=delivery_key, create=create)
    if checkout.at_head and has_children(pipeline):
        # The parent's file at its head speaks for its children too (Screwdriver syncs them).
        sync_child_pipelines(parent=pipeline)
    return event


def notice_push(
    *,
    pipeline: Pipeline,
    sha: str,
    pusher: str = "",
    changed_files: Sequence[str] | None = None,
    delivery_key: str | None = None,
) -> Event | None:
    """A new head on the pipeline's branch: start ~commit once per sha, whoever noticed first.

    Without `changed_files` (a local repository) they are the difference between the head we
    saw before and `sha`, read from the repository. A webhook delivery (`delivery_key`) handled
    again after its worker died finds the event it started, or starts the one it had not yet
    started although it had moved the head.
    """
    done = event_of_delivery(pipeline=pipeline, delivery_key=delivery_key)
    if done is not None:
        return done
    # Under the pipeline's row lock, so of two noticers of one sha (hook and poller) exactly one
    # moves the head, and a noticer of another sha waits for the first instead of losing to it.
    with transaction.atomic():
        previous = (
            Pipeline.objects.select_for_update()
            .filter(pk=pipeline.pk)
            .values_list("last_seen_sha", flat=True)
            .first()
        )
        if previous is None:
            return None
        if previous == sha:
            unfinished = (
                delivery_key is not None
                and not Event.objects.filter(pipeline=pipeline, sha=sha).exists()
            )
            if not unfinished:
                return None
        Pipeline.objects.filter(pk=pipeline.pk).update(last_seen_sha=sha)
    try:
        ref = pipeline.repo_ref()
    except ScmError as exc:
        logger.warning("Push %s on pipeline %s started nothing: %s", sha[:12], pipeline.pk, exc)
        return None
    scm = scm_for(pipeline)
    if changed_files is None and isinstance(scm, LocalGitScm):
        try:
            changed_files = scm.changed_files(ref, previous or "", sha)
        except ScmError as exc:
            # Unknown changes run every first job, sourcePaths or not, rather than nothing.
            logger.warning("Cannot list the files %s changed: %s", sha[:12], exc)
    try:
        return start_event(
            pipeline=pipeline,
            start_from="~commit",
            creator=Creator(name=pusher or "git push", username=pusher or "sd:scm"),
            sha=sha,
            cause_message=f"Commit {sha[:7]} pushed to {ref.branch}",
            changed_files=changed_files,
            delivery_key=delivery_key,
        )
    except PipelineError as exc:
        logger.info(
            "Push %s on pipeline %s started nothing: %s", sha[:12], pipeline.pk, exc.message
        )
        return None
