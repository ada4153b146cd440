"""What a launcher needs to run one build: the launch spec of docs/launcher-protocol.md."""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings

from builds.caches import STEPS as CACHE_STEPS
from builds.caches import cache_spec
from builds.models import Build
from builds.secrets import secret_values
from builds.services import (
    ARTIFACTS_STEP,
    SETUP_STEP,
    checkout_auth,
    checkout_url,
    config_parent,
    deep_merge,
    skips_checkout,
)
from executors.resources import termination_grace_seconds
from pipelines import source_paths
from pipelines.models import Event
from scm.base import RepoRef

HEARTBEAT_FRACTION = 4


def build_environment(build: Build, config: dict[str, Any]) -> list[list[str]]:
    """Screwdriver's SD_* variables, then the job's own environment (in its order)."""
    pipeline = build.job.pipeline
    ref = pipeline.repo_ref()
    api = f"{settings.SD_API_URL}/v4/"
    parents = [
        str(b) for job in build.parent_builds.values() for b in job.get("jobs", {}).values() if b
    ]
    env: list[list[str]] = [
        ["CI", "true"],
        ["CONTINUOUS_INTEGRATION", "true"],
        ["SCREWDRIVER", "true"],
        ["SD_PIPELINE_ID", str(pipeline.pk)],
        ["SD_PIPELINE_NAME", pipeline.name],
        ["SD_JOB_ID", str(build.job_id)],
        ["SD_JOB_NAME", build.job.name],
        ["SD_EVENT_ID", str(build.event_id)],
        ["SD_BUILD_ID", str(build.pk)],
        ["SD_PARENT_BUILD_ID", " ".join(parents) or str(build.parent_build_id or "")],
        ["SD_BUILD_SHA", build.sha],
        ["SD_PULL_REQUEST", str(build.event.pr_num or "")],
        ["SD_API_URL", api],
        ["SD_UI_URL", f"{settings.SD_UI_URL}/"],
        ["SD_BUILD_URL", f"{api}builds/{build.pk}"],
        ["SD_UI_BUILD_URL", f"{settings.SD_UI_URL}/pipelines/{pipeline.pk}/builds/{build.pk}"],
        # Artifacts, caches and commands are served by this API, not by a separate store.
        ["SD_STORE_URL", api],
        ["SD_PARENT_EVENT_ID", str(build.event.parent_event_id or "")],
        ["SD_SCHEDULED_BUILD", _true_false(build.event.is_scheduled)],
        ["SD_PRIVATE_PIPELINE", _true_false(not pipeline.is_public)],
        # The job's environment may name another shell (Screwdriver's way); see user_shell().
        ["USER_SHELL_BIN", settings.SD_STEP_SHELL],
        ["GIT_URL", ref.checkout_url.split("#", 1)[0]],
        *_branch_environment(build, _build_branch(build, ref)),
    ]
    source = _matched_source_path(build, config)
    if source:
        env.append(["SD_SOURCE_PATH", source])
    for name, value in (config.get("environment") or {}).items():
        env.append([str(name), value if isinstance(value, str) else json.dumps(value)])
    return env


def _true_false(value: bool) -> str:
    return "true" if value else "false"


# A program name or path: it is one word of the container agent's line protocol.
_SHELL_NAME = re.compile(r"[A-Za-z0-9_./+-]{1,200}\Z")


def user_shell(config: dict[str, Any]) -> str:
    """The shell the steps run in: the job's `USER_SHELL_BIN` if it names one, else ours."""
    chosen = (config.get("environment") or {}).get("USER_SHELL_BIN")
    chosen = chosen.strip() if isinstance(chosen, str) else ""
    return chosen if _SHELL_NAME.match(chosen) else settings.SD_STEP_SHELL


def _matched_source_path(build: Build, config: dict[str, Any]) -> str | None:
    """The `sourcePaths` entry that made a push or pull request run this (first) build."""
    commit = build.event.meta.get("commit")
    changed = commit.get("changedFiles") if isinstance(commit, dict) else None
    if not changed or build.event.parent_event_id or build.parent_builds or build.parent_build_id:
        return None
    paths = source_paths.source_paths_of(config, build.job.pipeline.root_dir)
    return source_paths.matched_source(str(changed).split(","), paths) if paths else None


def pr_head_ref(build: Build) -> str | None:
    """Return the ref that holds a PR build's head commit on its SCM, None for other builds."""
    pr_num = build.event.pr_num
    if build.event.type != "pr" or not pr_num:
        return None
    context = build.job.pipeline.scm_context
    if context.startswith("github:"):
        return f"refs/pull/{pr_num}/head"
    if context.startswith("gitlab:"):
        return f"refs/merge-requests/{pr_num}/head"
    # A local repository has no PR refs: its builds check out the event's sha, which it holds.
    return None


def _build_branch(build: Build, ref: RepoRef) -> str:
    """The branch a build checks out: its event's (a PR's base, the branch a ~commit:branch
    push went to), else the pipeline's."""
    return build.event.base_branch or ref.branch


def _branch_environment(build: Build, branch: str) -> list[list[str]]:
    # Screwdriver's checkout sets these: a PR build is on its local branch "pr", fetched from
    # the PR's head ref, and is told both branch names.
    if build.event.type != "pr" or not build.event.pr_num:
        return [["GIT_BRANCH", branch]]
    head_ref = pr_head_ref(build)
    pr = build.event.pr or {}
    remote = "upstream" if pr.get("fork") else "origin"
    fetched = (head_ref or f"refs/pull/{build.event.pr_num}/head").removeprefix("refs/")
    return [
        ["GIT_BRANCH", f"origin/refs/{fetched}:pr"],
        ["PR_BASE_BRANCH_NAME", branch],
        ["PR_BRANCH_NAME", f"{remote}/{pr.get('ref') or ''}"],
    ]


def _checkout(build: Build, ref: RepoRef) -> dict[str, Any]:
    """What sd-setup-scm clones: the branch at the build's sha, or a PR merged into its base.

    `auth` names the credential the launcher asks for (`token` or `sshKey`, see
    builds/services/credentials.py); the value itself is never in the spec, which is logged
    and may be kept by whoever runs the launcher.
    """
    pipeline = build.job.pipeline
    auth = checkout_auth(pipeline)
    checkout: dict[str, Any] = {
        "url": checkout_url(pipeline, ref, auth),
        "branch": _build_branch(build, ref),
        "sha": build.sha,
        "name": ref.name,
        "rootDir": ref.root_dir,
    }
    if auth:
        checkout["auth"] = auth
    if build.event.type == "pr" and build.event.pr_num:
        checkout["pr"] = {"number": build.event.pr_num, "headRef": pr_head_ref(build) or ""}
    return checkout


def _config_checkout(build: Build) -> dict[str, Any] | None:
    """A child pipeline's parent repository at the sha the event read the file at, which the
    launcher clones into $SD_CONFIG_DIR (Screwdriver's external config).

    A parent that needs a credential says which kind (`auth`), as the build's own checkout
    does; its value comes with the build's own, under `configCheckout`.
    """
    parent = config_parent(build)
    if parent is None:
        return None
    ref = parent.repo_ref()
    auth = checkout_auth(parent)
    config: dict[str, Any] = {
        "url": checkout_url(parent, ref, auth),
        "branch": ref.branch,
        "sha": build.event.config_pipeline_sha,
    }
    if auth:
        config["auth"] = auth
    return config


def _commit_meta(event: Event) -> dict[str, Any]:
    """Screwdriver's `commit.*` and `event.*` keys, under whatever the event's meta says."""
    commit = event.commit or {}
    return {
        "commit": {
            "author": commit.get("author") or {},
            "committer": commit.get("committer") or commit.get("author") or {},
            "message": commit.get("message", ""),
            "url": commit.get("url", ""),
            # Empty for what no commit started (a start by hand), as Screwdriver's guide says.
            "changedFiles": "",
        },
        "event": {"creator": event.creator or {}},
    }


# Keys a build's meta describes itself by; a remote parent's copies of them stay under sd.*.
_OWN_META_KEYS = frozenset({"build", "commit", "event", "parameters"})


def _initial_meta(build: Build) -> dict[str, Any]:
    meta = deep_merge(_commit_meta(build.event), build.event.meta)
    parent_ids = [
        b for job in build.parent_builds.values() for b in job.get("jobs", {}).values() if b
    ]
    if not parent_ids and build.parent_build_id:
        parent_ids = [build.parent_build_id]
    parents = (
        Build.objects.filter(pk__in=parent_ids)
        .select_related("job__pipeline")
        .order_by("end_time", "pk")
    )
    for parent in parents:
        if parent.job.pipeline_id == build.job.pipeline_id:
            meta = deep_merge(meta, parent.meta)
            continue
        if not parent.job.pipeline.may_feed(build.job.pipeline):
            continue  # a private pipeline's meta never reaches a build its readers don't own
        # A triggering build of another pipeline: its own keys come along, but never in place
        # of this build's commit, event, build or parameters; all of it is also kept where
        # `meta get --external sd@PIPELINE:JOB` looks first, as Screwdriver's launcher does.
        kept = {k: v for k, v in parent.meta.items() if k != "sd"}
        meta = deep_merge(meta, {k: v for k, v in kept.items() if k not in _OWN_META_KEYS})
        meta = deep_merge(meta, {"sd": {str(parent.job.pipeline_id): {parent.job.name: kept}}})
    params = meta.get("parameters")
    params = params if isinstance(params, dict) else {}
    own = params.get(build.job.name)
    if isinstance(own, dict) and all(isinstance(v, dict) and "value" in v for v in own.values()):
        # A job's own parameters are also read as parameters.NAME in its builds.
        meta["parameters"] = {**params, **own}
    meta["build"] = {
        "buildId": str(build.pk),
        "jobId": str(build.job_id),
        "jobName": build.job.name,
        "eventId": str(build.event_id),
        "pipelineId": str(build.job.pipeline_id),
        "sha": build.sha,
    }
    return meta


def launch_spec(build: Build) -> dict[str, Any]:
    """The launch spec the launcher fetches at start."""
    config = build.job_config()
    ref = build.job.pipeline.repo_ref()
    rows = list(build.steps.all())
    internal = {SETUP_STEP, ARTIFACTS_STEP, *CACHE_STEPS}
    steps = [{"name": s.name, "command": s.command} for s in rows if s.name not in internal]
    spec: dict[str, Any] = {
        "build": {
            "id": build.pk,
            "eventId": build.event_id,
            "jobId": build.job_id,
            "pipelineId": build.job.pipeline_id,
            "number": build.number,
            "jobName": build.job.name,
        },
        "checkout": (
            {"name": ref.name, "rootDir": ref.root_dir}
            if skips_checkout(config)
            else _checkout(build, ref)
        ),
        "steps": steps,
        "environment": build_environment(build, config),
        "secrets": secret_values(build),
        "meta": _initial_meta(build),
        "timeoutSeconds": build.timeout_seconds,
        # How long the teardown steps of a stopped or timed-out build may run.
        "teardownSeconds": termination_grace_seconds(
            config.get("annotations") or {}, most=settings.SD_MAX_TERMINATION_GRACE_SECONDS
        ),
        "heartbeatSeconds": max(1.0, settings.SD_BUILD_LEASE_SECONDS / HEARTBEAT_FRACTION),
        "shell": user_shell(config),
    }
    if any(s.name == ARTIFACTS_STEP for s in rows):
        # Builds made before the step existed publish nothing.
        spec["artifacts"] = {
            "step": ARTIFACTS_STEP,
            "maxFileBytes": settings.SD_ARTIFACTS_MAX_FILE_BYTES,
            "maxBuildBytes": settings.SD_ARTIFACTS_MAX_BUILD_BYTES,
        }
    config_checkout = None if skips_checkout(config) else _config_checkout(build)
    if config_checkout is not None:
        spec["configCheckout"] = config_checkout
    cache = cache_spec(build)
    if cache is not None:
        spec["cache"] = cache
    if settings.SD_LOG_SOCKET:
        # Where the launcher streams log batches while a page watches (builds/consumers.py).
        spec["logSocket"] = f"/builds/{build.pk}/logs/socket"
    return spec
