"""State changes of pipelines: creation, job sync, events, secrets and API tokens."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from builds import services as build_services
from builds.models import ACTIVE_STATUSES
from pipelines import encryption, workflow
from pipelines.auth_tokens import new_api_token_value
from pipelines.config import fallback_pipeline, parse_pipeline_yaml
from pipelines.models import (
    Collection,
    Event,
    Job,
    Pipeline,
    PipelinePermission,
    Secret,
    Token,
)
from pipelines.template_store import database_templates
from scm.base import CommitInfo, RepoRef, Scm, ScmError
from scm.github import GitHubScm, is_github_url
from scm.local import LocalGitScm
from scm.signing import repository_key

logger = logging.getLogger(__name__)

CONFIG_FILE = "screwdriver.yaml"
_PR_JOB_RE = re.compile(r"PR-\d+:")


class PipelineError(Exception):
    """A request about a pipeline that cannot be done; the message says why and what to do."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def scm_for(pipeline_or_url: Pipeline | str) -> Scm:
    """Return the SCM backend of a pipeline (by its scm_context) or of a checkout URL."""
    if isinstance(pipeline_or_url, Pipeline):
        if pipeline_or_url.scm_context.startswith("github:"):
            return GitHubScm()
        return LocalGitScm()
    return GitHubScm() if is_github_url(pipeline_or_url) else LocalGitScm()


def repo_ref_of(pipeline: Pipeline) -> RepoRef:
    return scm_for(pipeline).parse_url(pipeline.checkout_url)


# --- configuration -------------------------------------------------------------------------


def read_config(ref: RepoRef, sha: str) -> dict[str, Any]:
    """Parse screwdriver.yaml at `sha`; a missing or broken file yields the failing fallback."""
    try:
        raw = scm_for(ref.checkout_url).read_file(ref, sha, CONFIG_FILE)
    except ScmError as exc:
        return fallback_pipeline(f"Error: {exc}")
    if raw is None:
        return fallback_pipeline(
            f"Error: {CONFIG_FILE} was not found at {sha[:12]}: add one to the repository."
        )
    return parse_pipeline_yaml(raw.decode("utf-8", "replace"), templates=database_templates)


@transaction.atomic
def sync_jobs(*, pipeline: Pipeline, config: dict[str, Any]) -> dict[str, Job]:
    """Make the pipeline's jobs match a parsed config: create, update, archive, restore."""
    jobs_config: dict[str, list[dict[str, Any]]] = config.get("jobs", {})
    broken = bool(config.get("errors"))
    existing = {j.name: j for j in Job.objects.select_for_update().filter(pipeline=pipeline)}
    for name, permutations in jobs_config.items():
        job = existing.get(name)
        description = str((permutations[0] if permutations else {}).get("description", ""))[:100]
        if job is None:
            existing[name] = Job.objects.create(
                pipeline=pipeline, name=name, permutations=permutations, description=description
            )
        elif job.permutations != permutations or job.archived or job.description != description:
            job.permutations, job.archived, job.description = permutations, False, description
            job.save(update_fields=["permutations", "archived", "description"])
    # A broken file says nothing about which jobs exist: keep them rather than archive them.
    if not broken:
        # PR-<n>:<job> jobs belong to their pull request: only its closing archives them.
        gone = [
            j.pk
            for name, j in existing.items()
            if name not in jobs_config and not j.archived and not _PR_JOB_RE.match(name)
        ]
        Job.objects.filter(pk__in=gone).update(archived=True)
        pipeline.workflow_graph = config.get("workflowGraph", {})
        pipeline.annotations = config.get("annotations", {})
        pipeline.parameters = config.get("parameters", {})
        pipeline.save(update_fields=["workflow_graph", "annotations", "parameters"])
    return existing


# --- pipelines -----------------------------------------------------------------------------


def _pipeline_name(ref: RepoRef) -> str:
    path = PurePosixPath(ref.repo_path)
    return f"{path.parent.name or 'local'}/{ref.name}"


def _resolve(checkout_url: str) -> tuple[RepoRef, str, dict[str, Any]]:
    """The repository a checkout URL names, its branch head, and the config there."""
    scm = scm_for(checkout_url)
    try:
        ref = scm.parse_url(checkout_url)
        head = scm.head_sha(ref)
    except ScmError as exc:
        raise PipelineError(str(exc)) from exc
    return ref, head, read_config(ref, head)


def create_pipeline(*, checkout_url: str, user: User) -> Pipeline:
    """Create a pipeline from a repository URL, sync its jobs and install the push hook."""
    ref, head, config = _resolve(checkout_url)
    username = user.get_username()
    try:
        with transaction.atomic():
            pipeline = Pipeline.objects.create(
                name=_pipeline_name(ref),
                scm_uri=ref.scm_uri,
                scm_context=ref.scm_context,
                scm_repo={
                    "name": _pipeline_name(ref),
                    "branch": ref.branch,
                    "url": ref.checkout_url,
                    "rootDir": "",
                    "private": False,
                },
                checkout_url=ref.checkout_url,
                creator=user,
                admins={username: True},
                last_seen_sha=head,
            )
            # The creator of a local pipeline is its admin and grants others rights.
            PipelinePermission.objects.create(
                pipeline=pipeline,
                user=user,
                role=PipelinePermission.Role.ADMIN,
                granted_by=username,
            )
            sync_jobs(pipeline=pipeline, config=config)
    except IntegrityError as exc:
        raise PipelineError(
            f"A pipeline for {ref.checkout_url} already exists.", status=409
        ) from exc
    install_hook(pipeline=pipeline)
    return pipeline


def install_hook(*, pipeline: Pipeline) -> bool:
    """Install the post-receive hook that reports pushes; polling covers repos where we can't."""
    ref = repo_ref_of(pipeline)
    local = pipeline.scm_context == "local"
    url = f"{settings.SD_API_URL}/v4/webhooks" + ("/local" if local else "")
    try:
        installed = scm_for(pipeline).install_hook(
            ref, notify_url=url, key=repository_key(ref.repo_path)
        )
    except (ScmError, OSError) as exc:
        logger.warning("No push hook for pipeline %s: %s", pipeline.pk, exc)
        installed = False
    Pipeline.objects.filter(pk=pipeline.pk).update(hook_installed=installed)
    pipeline.hook_installed = installed
    return installed


# --- events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Creator:
    """Who or what started an event, in Screwdriver's user shape."""

    name: str
    username: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "username": self.username}


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


def start_event(
    *,
    pipeline: Pipeline,
    start_from: str,
    creator: Creator,
    sha: str | None = None,
    cause_message: str = "",
    parent_event: Event | None = None,
    meta: dict[str, Any] | None = None,
) -> Event:
    """Create an event at `sha` (default: the branch head); queue the jobs `start_from` selects."""
    if pipeline.state != Pipeline.State.ACTIVE:
        raise PipelineError(
            f"Pipeline {pipeline.pk} is {pipeline.state.lower()}: make it ACTIVE to start events.",
            status=409,
        )
    scm = scm_for(pipeline)
    try:
        ref = repo_ref_of(pipeline)
        sha = sha or scm.head_sha(ref)
        commit = scm.commit_info(ref, sha)
    except ScmError as exc:
        raise PipelineError(str(exc), status=422) from exc
    config = read_config(ref, sha)
    graph = config.get("workflowGraph", {})
    errors = list(config.get("errors", []))
    if errors:
        # A broken file runs its one failing job whatever was asked, so the event says why.
        start_from = next(iter(config.get("jobs", {"main": []})))
    try:
        names = workflow.start_jobs(graph, start_from)
    except ValueError as exc:
        raise PipelineError(
            f"{start_from} is not a job or trigger of this pipeline.", status=404
        ) from exc
    if not names:
        raise PipelineError(f"No job of this pipeline starts from {start_from}.", status=404)
    with transaction.atomic():
        sync_jobs(pipeline=pipeline, config=config)
        event = Event.objects.create(
            pipeline=pipeline,
            parent_event=parent_event,
            cause_message=(cause_message or f"Started by {creator.username}")[:512],
            commit=commit_json(commit),
            creator=creator.as_dict(),
            sha=sha,
            start_from=start_from,
            base_branch=ref.branch,
            meta=_with_parameters(meta or {}, config),
            workflow_graph=graph,
            job_configs=config.get("jobs", {}),
            config_errors=errors,
            status=Event.Status.CREATED,
        )
        builds = build_services.create_start_builds(
            event=event, job_names=names, cause=event.cause_message
        )
        if not builds:
            raise PipelineError(
                f"Every job that starts from {start_from} is disabled: enable one first.",
                status=422,
            )
        build_services.refresh_event_status(event=event)
        Pipeline.objects.filter(pk=pipeline.pk).update(last_event=event)
    return event


def notice_push(*, pipeline: Pipeline, sha: str, pusher: str = "") -> Event | None:
    """A new head on the pipeline's branch: start ~commit once per sha, whoever noticed first."""
    moved = (
        Pipeline.objects.filter(pk=pipeline.pk).exclude(last_seen_sha=sha).update(last_seen_sha=sha)
    )
    if not moved:
        return None
    try:
        return start_event(
            pipeline=pipeline,
            start_from="~commit",
            creator=Creator(name=pusher or "git push", username=pusher or "sd:scm"),
            sha=sha,
            cause_message=f"Commit {sha[:7]} pushed to {repo_ref_of(pipeline).branch}",
        )
    except PipelineError as exc:
        logger.info(
            "Push %s on pipeline %s started nothing: %s", sha[:12], pipeline.pk, exc.message
        )
        return None


# --- secrets and tokens --------------------------------------------------------------------


def set_secret(*, pipeline: Pipeline, name: str, value: str, allow_in_pr: bool = False) -> Secret:
    secret, _ = Secret.objects.update_or_create(
        pipeline=pipeline,
        name=name,
        defaults={"encrypted_value": encryption.encrypt(value), "allow_in_pr": allow_in_pr},
    )
    return secret


@dataclass(frozen=True)
class NewToken:
    token: Token
    value: str


def create_user_token(*, user: User, name: str, description: str = "") -> NewToken:
    """A new API token for a user; the value exists only in the return value."""
    value = new_api_token_value()
    token = Token.objects.create(
        user=user, name=name, description=description, hash=Token.hash_value(value)
    )
    return NewToken(token=token, value=value)


def touch_token(token: Token) -> None:
    Token.objects.filter(pk=token.pk).update(last_used=timezone.now())


def create_pipeline_token(*, pipeline: Pipeline, name: str, description: str = "") -> NewToken:
    """A new API token of a pipeline; the value exists only in the return value."""
    value = new_api_token_value()
    token = Token.objects.create(
        pipeline=pipeline, name=name, description=description, hash=Token.hash_value(value)
    )
    return NewToken(token=token, value=value)


def refresh_token(*, token: Token) -> NewToken:
    """Give a token a new value; the old one stops working at once."""
    value = new_api_token_value()
    Token.objects.filter(pk=token.pk).update(hash=Token.hash_value(value))
    token.hash = Token.hash_value(value)
    return NewToken(token=token, value=value)


def update_token(*, token: Token, name: str | None, description: str | None) -> Token:
    """Rename a token or change its description."""
    if name is not None:
        token.name = name
    if description is not None:
        token.description = description
    token.save(update_fields=["name", "description"])
    return token


def delete_token(*, token: Token) -> None:
    """Revoke a token: it stops working at once."""
    Token.objects.filter(pk=token.pk).delete()


# --- secrets -------------------------------------------------------------------------------


def delete_secret(*, secret: Secret) -> None:
    """Remove a secret; builds that list it no longer get it."""
    Secret.objects.filter(pk=secret.pk).delete()


def create_secret(*, pipeline: Pipeline, name: str, value: str, allow_in_pr: bool) -> Secret:
    """Add a secret; a second one of the same name is a conflict, not an overwrite."""
    try:
        with transaction.atomic():
            return Secret.objects.create(
                pipeline=pipeline,
                name=name,
                encrypted_value=encryption.encrypt(value),
                allow_in_pr=allow_in_pr,
            )
    except IntegrityError as exc:
        raise PipelineError(
            f"Secret {name} already exists in pipeline {pipeline.pk}: update it instead.",
            status=409,
        ) from exc


def update_secret(*, secret: Secret, value: str | None, allow_in_pr: bool | None) -> Secret:
    """Replace a secret's value or its allowInPR flag."""
    if value is not None:
        secret.encrypted_value = encryption.encrypt(value)
    if allow_in_pr is not None:
        secret.allow_in_pr = allow_in_pr
    secret.save(update_fields=["encrypted_value", "allow_in_pr"])
    return secret


# --- rights, pipeline changes, jobs and restarts -------------------------------------------


def _refuse_losing_last_admin(pipeline: Pipeline, user: User) -> None:
    admins = PipelinePermission.objects.select_for_update().filter(
        pipeline=pipeline, role=PipelinePermission.Role.ADMIN
    )
    if list(admins.values_list("user_id", flat=True)) == [user.pk]:
        raise PipelineError(
            f"{user.get_username()} is the last admin of pipeline {pipeline.pk}: "
            "make someone else admin first.",
            status=409,
        )


@transaction.atomic
def grant_permission(
    *, pipeline: Pipeline, user: User, role: str, granted_by: str
) -> PipelinePermission:
    """Give a user a role on a pipeline, replacing the one they had."""
    if role != PipelinePermission.Role.ADMIN:
        _refuse_losing_last_admin(pipeline, user)
    permission, _ = PipelinePermission.objects.update_or_create(
        pipeline=pipeline, user=user, defaults={"role": role, "granted_by": granted_by[:150]}
    )
    return permission


@transaction.atomic
def revoke_permission(*, pipeline: Pipeline, user: User) -> None:
    """Take a user's role away; the last admin cannot be removed, or nobody could grant again."""
    _refuse_losing_last_admin(pipeline, user)
    PipelinePermission.objects.filter(pipeline=pipeline, user=user).delete()


def sync_pipeline(*, pipeline: Pipeline) -> Pipeline:
    """Re-read screwdriver.yaml at the branch head and make the jobs match it."""
    try:
        head = scm_for(pipeline).head_sha(repo_ref_of(pipeline))
    except ScmError as exc:
        raise PipelineError(str(exc), status=422) from exc
    sync_jobs(pipeline=pipeline, config=read_config(repo_ref_of(pipeline), head))
    pipeline.refresh_from_db()
    return pipeline


def update_pipeline(
    *,
    pipeline: Pipeline,
    checkout_url: str | None = None,
    settings: dict[str, Any] | None = None,
    badges: dict[str, Any] | None = None,
    state: str | None = None,
    state_message: str = "",
    changer: str = "",
) -> Pipeline:
    """Change what a pipeline builds, its settings and badges, or whether it is active."""
    if checkout_url is not None:
        pipeline = _repoint(pipeline=pipeline, checkout_url=checkout_url)
    fields: list[str] = []
    if settings is not None:
        pipeline.settings = {**pipeline.settings, **settings}
        fields.append("settings")
    if badges is not None:
        pipeline.badges = {**pipeline.badges, **badges}
        fields.append("badges")
    if state is not None and state != pipeline.state:
        pipeline.state = state
        pipeline.state_changer = changer[:128]
        pipeline.state_change_time = timezone.now()
        pipeline.state_change_message = state_message[:512]
        fields += ["state", "state_changer", "state_change_time", "state_change_message"]
    if fields:
        pipeline.save(update_fields=fields)
    return pipeline


def _repoint(*, pipeline: Pipeline, checkout_url: str) -> Pipeline:
    """Point a pipeline at another repository or branch, then sync its jobs."""
    ref, head, config = _resolve(checkout_url)
    try:
        with transaction.atomic():
            pipeline.name = _pipeline_name(ref)
            pipeline.scm_uri, pipeline.checkout_url = ref.scm_uri, ref.checkout_url
            pipeline.scm_repo = {**pipeline.scm_repo, "name": pipeline.name, "branch": ref.branch}
            pipeline.scm_repo["url"] = ref.checkout_url
            pipeline.last_seen_sha = head
            pipeline.save()
            sync_jobs(pipeline=pipeline, config=config)
    except IntegrityError as exc:
        raise PipelineError(
            f"A pipeline for {ref.checkout_url} already exists.", status=409
        ) from exc
    install_hook(pipeline=pipeline)
    return pipeline


@transaction.atomic
def delete_pipeline(*, pipeline: Pipeline) -> None:
    """Delete a pipeline and everything in it; refused while any of its builds is active."""
    from builds.models import Build

    if Build.objects.filter(job__pipeline=pipeline).active().exists():
        raise PipelineError(
            f"Pipeline {pipeline.pk} has builds running: stop its events first.", status=409
        )
    Pipeline.objects.filter(pk=pipeline.pk).delete()


def set_job_state(*, job: Job, state: str, message: str, changer: str) -> Job:
    """Enable or disable a job, recording who did it and why."""
    job.state, job.state_change_message = state, message[:512]
    job.state_changer, job.state_change_time = changer[:128], timezone.now()
    job.save(update_fields=["state", "state_change_message", "state_changer", "state_change_time"])
    return job


def restart_event(
    *,
    parent_event: Event,
    start_from: str,
    creator: Creator,
    cause_message: str = "",
    meta: dict[str, Any] | None = None,
) -> Event:
    """A new event from a job of an earlier one: its sha, its meta under the new, its group."""
    if parent_event.type == Event.Type.PR and parent_event.pr_num:
        # A pull request's job restarts as a PR event again, under the same secret rules.
        return _restart_pr(parent_event=parent_event, start_from=start_from, creator=creator)
    with transaction.atomic():
        event = start_event(
            pipeline=parent_event.pipeline,
            start_from=start_from,
            creator=creator,
            sha=parent_event.sha,
            cause_message=cause_message,
            parent_event=parent_event,
            meta=build_services.deep_merge(parent_event.meta, meta or {}),
        )
        event.group_event_id = parent_event.group_event_id or parent_event.pk
        event.save(update_fields=["group_event"])
    return event


# --- collections ---------------------------------------------------------------------------


def _readable_ids(user: User, pipeline_ids: list[int]) -> list[int]:
    ids = list(dict.fromkeys(pipeline_ids))
    found = set(Pipeline.objects.readable_by(user).filter(pk__in=ids).values_list("pk", flat=True))
    missing = [pk for pk in ids if pk not in found]
    if missing:
        raise PipelineError(
            f"No pipeline {', '.join(map(str, missing))} that you can read: check pipelineIds.",
            status=404,
        )
    return ids


@transaction.atomic
def create_collection(
    *, user: User, name: str, description: str = "", pipeline_ids: list[int] | None = None
) -> Collection:
    """A new named list of pipelines for `user`; names are unique per person."""
    ids = _readable_ids(user, pipeline_ids or [])
    if Collection.objects.filter(user=user, name=name).exists():
        raise PipelineError(f"You already have a collection named {name!r}.", status=409)
    collection = Collection.objects.create(user=user, name=name, description=description)
    collection.pipelines.set(ids)
    return collection


@transaction.atomic
def update_collection(
    *,
    collection: Collection,
    name: str | None = None,
    description: str | None = None,
    pipeline_ids: list[int] | None = None,
) -> Collection:
    """Rename a collection, describe it, or replace its pipelines."""
    if name is not None and name != collection.name:
        if Collection.objects.filter(user_id=collection.user_id, name=name).exists():
            raise PipelineError(f"You already have a collection named {name!r}.", status=409)
        collection.name = name
    if description is not None:
        collection.description = description
    collection.save(update_fields=["name", "description"])
    if pipeline_ids is not None:
        collection.pipelines.set(_readable_ids(collection.user, pipeline_ids))
    return collection


def add_to_collection(*, collection: Collection, pipeline: Pipeline) -> None:
    _readable_ids(collection.user, [pipeline.pk])
    collection.pipelines.add(pipeline)


def remove_from_collection(*, collection: Collection, pipeline: Pipeline) -> None:
    collection.pipelines.remove(pipeline)


def delete_collection(*, collection: Collection) -> None:
    collection.delete()


# --- pull requests -------------------------------------------------------------------------


def pr_job_name(pr_num: int, job: str) -> str:
    """Return Screwdriver's name of a job run for a pull request, PR-<n>:<job>."""
    return f"PR-{pr_num}:{job}"


def start_pr_event(
    *,
    pipeline: Pipeline,
    pr_num: int,
    sha: str,
    creator: Creator,
    pr: dict[str, Any],
    cause_message: str = "",
    start_from: str = "~pr",
    parent_event: Event | None = None,
) -> Event | None:
    """Run the ~pr jobs (or one PR-<n>:<job>) of the PR's own screwdriver.yaml at its sha."""
    if pipeline.state != Pipeline.State.ACTIVE:
        return None
    scm = scm_for(pipeline)
    ref = repo_ref_of(pipeline)
    try:
        commit = scm.commit_info(ref, sha)
    except ScmError as exc:
        raise PipelineError(str(exc), status=422) from exc
    config = read_config(ref, sha)
    graph = config.get("workflowGraph", {})
    errors = list(config.get("errors", []))
    jobs_config: dict[str, list[dict[str, Any]]] = config.get("jobs", {})
    if errors:
        names = list(jobs_config)[:1]
    elif start_from != "~pr":
        names = [name for name in jobs_config if pr_job_name(pr_num, name) == start_from]
    else:
        names = list(
            dict.fromkeys(
                workflow.start_jobs(graph, "~pr") + workflow.start_jobs(graph, f"~pr:{ref.branch}")
            )
        )
    if not names:
        return None
    pr_configs = {pr_job_name(pr_num, name): jobs_config.get(name, []) for name in names}
    with transaction.atomic():
        for name, permutations in pr_configs.items():
            Job.objects.update_or_create(
                pipeline=pipeline,
                name=name,
                defaults={"permutations": permutations, "archived": False},
            )
        event = Event.objects.create(
            pipeline=pipeline,
            parent_event=parent_event,
            group_event_id=(parent_event.group_event_id or parent_event.pk)
            if parent_event
            else None,
            type=Event.Type.PR,
            pr_num=pr_num,
            pr=pr,
            cause_message=(cause_message or f"Pull request {pr_num} by {creator.username}")[:512],
            commit=commit_json(commit),
            creator=creator.as_dict(),
            sha=sha,
            start_from=start_from,
            base_branch=ref.branch,
            workflow_graph=graph,
            job_configs=pr_configs,
            config_errors=errors,
            status=Event.Status.CREATED,
        )
        build_services.create_start_builds(
            event=event, job_names=list(pr_configs), cause=event.cause_message
        )
        build_services.refresh_event_status(event=event)
    return event


def _restart_pr(*, parent_event: Event, start_from: str, creator: Creator) -> Event:
    event = start_pr_event(
        pipeline=parent_event.pipeline,
        pr_num=parent_event.pr_num or 0,
        sha=parent_event.sha,
        creator=creator,
        pr=parent_event.pr,
        start_from=start_from,
        parent_event=parent_event,
    )
    if event is None:
        raise PipelineError(f"{start_from} is not a job of this pull request.", status=404)
    return event


def stop_pr_builds(*, pipeline: Pipeline, pr_num: int, message: str) -> int:
    """Abort every active build of a pull request's events; return how many events it stopped."""
    events = Event.objects.filter(pipeline=pipeline, type=Event.Type.PR, pr_num=pr_num)
    stopped = 0
    for event in events.filter(builds__status__in=list(ACTIVE_STATUSES)).distinct():
        build_services.stop_event(event=event, message=message)
        stopped += 1
    return stopped


def close_pr(*, pipeline: Pipeline, pr_num: int, creator: Creator) -> Event | None:
    """A closed pull request: stop its builds, archive its jobs, run ~pr-closed if asked for."""
    stop_pr_builds(pipeline=pipeline, pr_num=pr_num, message=f"Pull request {pr_num} was closed")
    Job.objects.filter(pipeline=pipeline, name__startswith=f"PR-{pr_num}:").update(archived=True)
    if not workflow.start_jobs(pipeline.workflow_graph, "~pr-closed"):
        return None
    return start_event(
        pipeline=pipeline,
        start_from="~pr-closed",
        creator=creator,
        cause_message=f"Pull request {pr_num} closed by {creator.username}",
    )
