"""What a launcher needs to run one build: the launch spec of docs/launcher-protocol.md."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from builds.models import Build
from builds.services import SETUP_STEP, deep_merge, skips_checkout
from executors.services import config_of
from pipelines.encryption import decrypt
from pipelines.models import Secret
from pipelines.services import repo_ref_of

HEARTBEAT_FRACTION = 4


def build_environment(build: Build, config: dict[str, Any]) -> list[list[str]]:
    """Screwdriver's SD_* variables, then the job's own environment (in its order)."""
    pipeline = build.job.pipeline
    ref = repo_ref_of(pipeline)
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
        ["GIT_URL", ref.checkout_url.split("#", 1)[0]],
        ["GIT_BRANCH", ref.branch],
    ]
    for name, value in (config.get("environment") or {}).items():
        env.append([str(name), value if isinstance(value, str) else json.dumps(value)])
    return env


def _secrets(build: Build, config: dict[str, Any]) -> dict[str, str]:
    wanted = [str(s) for s in config.get("secrets") or []]
    if not wanted:
        return {}
    rows = Secret.objects.filter(pipeline_id=build.job.pipeline_id, name__in=wanted)
    if build.event.type == "pr":
        rows = rows.filter(allow_in_pr=True)
    return {s.name: decrypt(s.encrypted_value) for s in rows}


def _initial_meta(build: Build) -> dict[str, Any]:
    meta = dict(build.event.meta)
    parent_ids = [
        b for job in build.parent_builds.values() for b in job.get("jobs", {}).values() if b
    ]
    if not parent_ids and build.parent_build_id:
        parent_ids = [build.parent_build_id]
    for parent in Build.objects.filter(pk__in=parent_ids).order_by("end_time", "pk").only("meta"):
        meta = deep_merge(meta, parent.meta)
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
    config = config_of(build)
    ref = repo_ref_of(build.job.pipeline)
    steps = [
        {"name": s.name, "command": s.command} for s in build.steps.all() if s.name != SETUP_STEP
    ]
    return {
        "build": {
            "id": build.pk,
            "eventId": build.event_id,
            "jobId": build.job_id,
            "pipelineId": build.job.pipeline_id,
            "number": build.number,
            "jobName": build.job.name,
        },
        "checkout": {"name": ref.name}
        if skips_checkout(config)
        else {"url": ref.repo_path, "branch": ref.branch, "sha": build.sha, "name": ref.name},
        "steps": steps,
        "environment": build_environment(build, config),
        "secrets": _secrets(build, config),
        "meta": _initial_meta(build),
        "timeoutSeconds": build.timeout_seconds,
        "heartbeatSeconds": max(1.0, settings.SD_BUILD_LEASE_SECONDS / HEARTBEAT_FRACTION),
        "shell": settings.SD_STEP_SHELL,
    }
