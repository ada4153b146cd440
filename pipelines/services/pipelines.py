"""Pipelines: creation from a repository, job sync, changes, deletion and people's rights."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from pipelines import periodic
from pipelines.config import fallback_pipeline, parse_pipeline_yaml
from pipelines.models import Job, Pipeline, PipelinePermission
from pipelines.services.deploy_keys import ensure_deploy_key
from pipelines.services.stages import sync_stages_and_triggers
from pipelines.template_store import database_pipeline_templates, database_templates
from scm.base import (
    RepoRef,
    Scm,
    ScmError,
    ScmTokenRejected,
    split_checkout_url,
    with_root_dir,
)
from scm.clients import scm_of_context, scm_of_url
from scm.gitlab import GitLabScm, project_path_of
from scm.local import LocalGitScm
from scm.rights import forget_scm_token, scm_token_of
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
        return scm_of_context(pipeline_or_url.scm_context)
    return scm_of_url(pipeline_or_url)


# --- configuration -------------------------------------------------------------------------


def read_config(ref: RepoRef, sha: str) -> dict[str, Any]:
    """Parse the pipeline's screwdriver.yaml at `sha` (in its root directory, if it has one);
    a missing or broken file yields the failing fallback."""
    path = ref.repo_file(CONFIG_FILE)
    try:
        raw = scm_for(ref.checkout_url).read_file(ref, sha, path)
    except ScmError as exc:
        return fallback_pipeline(f"Error: {exc}")
    if raw is None:
        where = f"the folder {ref.root_dir}" if ref.root_dir else "the repository"
        return fallback_pipeline(
            f"Error: {path} was not found at {sha[:12]}: add a {CONFIG_FILE} to {where}."
        )
    return parse_config(raw.decode("utf-8", "replace"))


def config_source(pipeline: Pipeline) -> tuple[RepoRef, str]:
    """Where a pipeline's jobs are defined and the sha to read them at: its own branch head,
    or for a child pipeline (external config) its parent's branch head, as in Screwdriver."""
    source = pipeline.config_pipeline or pipeline
    ref = source.repo_ref()
    try:
        return ref, scm_for(source).head_sha(ref)
    except ScmError as exc:
        raise PipelineError(str(exc), status=422) from exc


def _subscribed_scm_urls(config: dict[str, Any]) -> list[dict[str, Any]]:
    """`subscribe.scmUrls` as the scm_uris and actions (without `~`) a push is matched on.

    A local repository counts only under SD_LOCAL_REPO_ROOTS, checked before git runs: a file
    must not learn which paths of the server's disk hold repositories.
    """
    found: list[dict[str, Any]] = []
    for entry in (config.get("subscribe") or {}).get("scmUrls") or []:
        for url, actions in (entry or {}).items():
            try:
                scm = scm_for(url)
                if isinstance(scm, LocalGitScm) and not _under_allowed_root(
                    LocalGitScm.location_of(url)
                ):
                    logger.warning("Not subscribing to %s: not under SD_LOCAL_REPO_ROOTS", url)
                    continue
                scm_uri = scm.parse_url(url).scm_uri
            except ScmError as exc:
                logger.warning("Cannot subscribe to %s: %s", url, exc)
                continue
            wanted = sorted({str(a).lstrip("~") for a in actions or []})
            found.append({"scmUri": scm_uri, "actions": wanted})
    return found


def parse_config(text: str) -> dict[str, Any]:
    """A screwdriver.yaml's text as the pipeline's config, templates read from this server."""
    return parse_pipeline_yaml(
        text, templates=database_templates, pipeline_templates=database_pipeline_templates
    )


_DISABLED_BY_DEFAULT_MESSAGE = (
    "Disabled when created (screwdriver.cd/jobDisabledByDefault); enable it to run it."
)


def _disabled_by_default(permutations: list[dict[str, Any]]) -> bool:
    """Screwdriver's reading of `screwdriver.cd/jobDisabledByDefault` (YAML's true words)."""
    annotations = (permutations[0] if permutations else {}).get("annotations") or {}
    value = annotations.get("screwdriver.cd/jobDisabledByDefault", False)
    if isinstance(value, bool):
        return value
    return str(value).lower() in {"on", "true", "yes", "y"}


@transaction.atomic
def sync_jobs(
    *, pipeline: Pipeline, config: dict[str, Any], at_head: bool = True
) -> dict[str, Job]:
    """Make the pipeline's jobs match a parsed config: create, update, archive, restore.

    Only the config at the branch head (`at_head`) speaks for the pipeline: one read at another
    sha (a restart of an old event, a tag, a push to another branch) only adds the jobs that
    are missing, so an old file can never reset annotations (restrictPR), the workflow graph,
    stages, triggers or schedules, nor archive or change today's jobs.
    """
    jobs_config: dict[str, list[dict[str, Any]]] = config.get("jobs", {})
    broken = bool(config.get("errors"))
    existing = {j.name: j for j in Job.objects.select_for_update().filter(pipeline=pipeline)}
    for name, permutations in jobs_config.items():
        job = existing.get(name)
        description = str((permutations[0] if permutations else {}).get("description", ""))[:100]
        if job is None:
            # Only a job's first appearance reads the annotation: a job someone enabled since
            # stays enabled through later syncs, as in Screwdriver.
            disabled = _disabled_by_default(permutations) and not _PR_JOB_RE.match(name)
            existing[name] = Job.objects.create(
                pipeline=pipeline,
                name=name,
                permutations=permutations,
                description=description,
                state=Job.State.DISABLED if disabled else Job.State.ENABLED,
                state_changer="sd:scm" if disabled else "",
                state_change_time=timezone.now() if disabled else None,
                state_change_message=_DISABLED_BY_DEFAULT_MESSAGE if disabled else "",
            )
        elif not at_head:
            continue
        elif job.permutations != permutations or job.archived or job.description != description:
            job.permutations, job.archived, job.description = permutations, False, description
            job.save(update_fields=["permutations", "archived", "description"])
    if not at_head:
        return existing
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
        # A child runs its parent's file but never has children of its own.
        children = {} if pipeline.config_pipeline_id else config.get("childPipelines") or {}
        pipeline.child_pipelines_config = children
        pipeline.subscribed_scm_urls = _subscribed_scm_urls(config)
        pipeline.save(
            update_fields=[
                "workflow_graph",
                "annotations",
                "parameters",
                "child_pipelines_config",
                "subscribed_scm_urls",
            ]
        )
        # `screwdriver.cd/useDeployKey: true` on the branch: the admin finds the key to add.
        ensure_deploy_key(pipeline=pipeline)
    sync_stages_and_triggers(pipeline=pipeline, config=config, jobs=existing)
    periodic.sync_schedules(pipeline=pipeline)
    return existing


# --- pipelines -----------------------------------------------------------------------------


def _pipeline_name(ref: RepoRef) -> str:
    if ref.scm_context.startswith("gitlab:"):
        # A GitLab project may sit in nested subgroups: only its full path names it uniquely.
        return project_path_of(ref)
    path = PurePosixPath(ref.repo_path)
    return f"{path.parent.name or 'local'}/{ref.name}"


# One answer for every local path a person may not use, so it never tells whether it exists.
LOCAL_PATH_REFUSED = (
    "This local path is not one you may build from: use a repository under a folder the "
    "operator allows (SD_LOCAL_REPO_ROOTS), or ask an admin."
)


def _under_allowed_root(path: str) -> bool:
    """Whether path, its symlinks and `..` resolved, lies under a folder of SD_LOCAL_REPO_ROOTS."""
    real = Path(os.path.realpath(path))
    return any(
        real.is_relative_to(os.path.realpath(root))
        for root in settings.SD_LOCAL_REPO_ROOTS
        if os.path.isabs(root)
    )


_SCM_URI_MAX = Pipeline._meta.get_field("scm_uri").max_length or 0
_CHECKOUT_URL_MAX = Pipeline._meta.get_field("checkout_url").max_length or 0


def _resolve(checkout_url: str, *, user: User | None) -> tuple[RepoRef, str, dict[str, Any]]:
    """The repository a checkout URL names, its branch head, and the config there."""
    scm = scm_for(checkout_url)
    guarded = isinstance(scm, LocalGitScm) and user is not None and not user.is_superuser
    try:
        ref = scm.parse_url(checkout_url)
    except ScmError as exc:
        # git's own words would tell a person what exists on the server's disk.
        raise PipelineError(LOCAL_PATH_REFUSED if guarded else str(exc)) from exc
    # The path was checked before git ran; a symlink swapped since then is caught here.
    if guarded and not _under_allowed_root(ref.repo_path):
        raise PipelineError(LOCAL_PATH_REFUSED)
    if len(ref.scm_uri) > _SCM_URI_MAX or len(ref.checkout_url) > _CHECKOUT_URL_MAX:
        raise PipelineError(
            "The repository's path, branch and source directory together are too long to "
            "store; use a shorter source directory or branch name."
        )
    try:
        head = scm.head_sha(ref)
    except ScmError as exc:
        raise PipelineError(str(exc)) from exc
    return ref, head, read_config(ref, head)


def check_local_path(*, checkout_url: str, user: User | None) -> None:
    """Refuse (PipelineError) a local repository `user` may not build from; see below."""
    _check_local_path(checkout_url=checkout_url, user=user)


def _check_local_path(*, checkout_url: str, user: User | None) -> None:
    """Refuse a local repository to anyone but a superuser unless it is under an allowed root.

    The server's disk is the operator's: without this anyone signed in could build (and so
    read) any repository the server can read. Every refusal says the same, before git is run.
    """
    if user is None or user.is_superuser:
        return
    try:
        path = LocalGitScm.location_of(checkout_url)
    except ScmError as exc:
        raise PipelineError(LOCAL_PATH_REFUSED) from exc
    if not _under_allowed_root(path):
        raise PipelineError(LOCAL_PATH_REFUSED)


def _check_creator_administers(*, checkout_url: str, user: User | None) -> bool:
    """Refuse unless the creator may use the repository; return its privacy.

    As in Screwdriver, only a GitHub/GitLab repository's admins make its pipeline, asked with
    their own token; superusers (and callers without a user: management commands) use the
    server's token. A local repository must lie under SD_LOCAL_REPO_ROOTS (or the creator be
    a superuser).
    """
    scm = scm_for(checkout_url)
    if isinstance(scm, LocalGitScm):
        _check_local_path(checkout_url=checkout_url, user=user)
        return False
    site = "GitLab" if isinstance(scm, GitLabScm) else "GitHub"
    try:
        ref = scm.parse_url(checkout_url)
        if user is not None and not user.is_superuser:
            repository = _pipeline_name(ref)
            token = scm_token_of(user, ref.scm_context)
            if token is None:
                raise PipelineError(
                    f"Only admins of {repository} may create its pipeline: sign in with "
                    f"{site} and be an admin of {repository}.",
                    status=403,
                )
            try:
                role = scm.user_role(ref, token)
            except ScmTokenRejected as exc:
                forget_scm_token(user=user, scm_context=ref.scm_context)
                raise PipelineError(
                    f"Your {site} sign-in has expired: sign in with {site} again.", status=403
                ) from exc
            if role != "admin":
                raise PipelineError(
                    f"You are not an admin of {repository} on {site}: sign in with {site} "
                    f"and be an admin of {repository} to create its pipeline.",
                    status=403,
                )
        return scm.is_private(ref)
    except ScmError as exc:
        raise PipelineError(str(exc)) from exc


def _with_source_dir(checkout_url: str, root_dir: str) -> str:
    """The checkout URL with `root_dir` as its source directory (Screwdriver's `rootDir`,
    which wins over the URL's `:path`), refused before anything reads the repository."""
    try:
        checkout_url = with_root_dir(checkout_url, root_dir)
        split_checkout_url(checkout_url)
    except ScmError as exc:
        raise PipelineError(str(exc)) from exc
    return checkout_url


def create_pipeline(
    *,
    checkout_url: str,
    user: User,
    root_dir: str = "",
    config_pipeline: Pipeline | None = None,
) -> Pipeline:
    """Create a pipeline from a repository URL, sync its jobs and install the push hook.

    `root_dir` (or the URL's `#branch:path`) makes it a pipeline of one folder of the
    repository: its screwdriver.yaml is read there and its builds start there.
    `config_pipeline` makes it that pipeline's child: its jobs come from the parent's file.
    """
    checkout_url = _with_source_dir(checkout_url, root_dir)
    private = _check_creator_administers(checkout_url=checkout_url, user=user)
    ref, head, config = _resolve(checkout_url, user=user)
    if config_pipeline is not None:
        source, source_sha = config_source(config_pipeline)
        config = read_config(source, source_sha)
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
                    "rootDir": ref.root_dir,
                    "private": private,
                },
                checkout_url=ref.checkout_url,
                root_dir=ref.root_dir,
                creator=user,
                admins={username: True},
                last_seen_sha=head,
                config_pipeline=config_pipeline,
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
    install_hook(pipeline=pipeline, ref=ref)
    return pipeline


def install_hook(*, pipeline: Pipeline, ref: RepoRef | None = None) -> bool:
    """Install the post-receive hook that reports pushes; polling covers repos where we can't.

    `ref` is the pipeline's repository when the caller has just read it.
    """
    ref = ref or pipeline.repo_ref()
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
    """Re-read screwdriver.yaml at the branch head (a child: its parent's) and make the jobs
    match it."""
    ref, head = config_source(pipeline)
    sync_jobs(pipeline=pipeline, config=read_config(ref, head))
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
    user: User | None = None,
    root_dir: str = "",
) -> Pipeline:
    """Change what a pipeline builds, its settings and badges, or whether it is active.

    A new checkout URL on GitHub/GitLab needs `user` to administer that repository, as at
    creation (the API passes the caller). A `root_dir` alone moves the pipeline to another
    folder of its repository and branch; with a checkout URL it wins over the URL's `:path`.
    """
    if checkout_url is None and root_dir:
        checkout_url = pipeline.checkout_url
    if checkout_url is not None and pipeline.config_pipeline_id:
        raise PipelineError(
            f"Pipeline {pipeline.pk} is a child of pipeline {pipeline.config_pipeline_id}: "
            "change its repository in the parent's childPipelines instead.",
            status=403,
        )
    if checkout_url is not None:
        checkout_url = _with_source_dir(checkout_url, root_dir)
        pipeline = _repoint(pipeline=pipeline, checkout_url=checkout_url, user=user)
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


def _repoint(*, pipeline: Pipeline, checkout_url: str, user: User | None) -> Pipeline:
    """Point a pipeline at another repository or branch, then sync its jobs."""
    # Otherwise a local pipeline's admin could repoint it at any repository the server reads.
    private = _check_creator_administers(checkout_url=checkout_url, user=user)
    ref, head, config = _resolve(checkout_url, user=user)
    try:
        with transaction.atomic():
            pipeline.name = _pipeline_name(ref)
            pipeline.scm_uri, pipeline.checkout_url = ref.scm_uri, ref.checkout_url
            pipeline.scm_context = ref.scm_context
            pipeline.scm_repo = {**pipeline.scm_repo, "name": pipeline.name, "branch": ref.branch}
            pipeline.scm_repo["url"] = ref.checkout_url
            pipeline.scm_repo["rootDir"] = pipeline.root_dir = ref.root_dir
            if ref.scm_context != "local":
                pipeline.scm_repo["private"] = private
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

    if pipeline.config_pipeline_id and pipeline.state == Pipeline.State.ACTIVE:
        raise PipelineError(
            f"Pipeline {pipeline.pk} is a child of pipeline {pipeline.config_pipeline_id}: "
            "remove it from the parent's childPipelines first.",
            status=403,
        )
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
