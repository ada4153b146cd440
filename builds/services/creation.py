"""Build rows: a job permutation's build and steps from the event's config, and dispatch."""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django_q.tasks import async_task

from builds import caches, lifecycle
from builds.models import Build, BuildStatus, Step
from pipelines import workflow
from pipelines.models import Event, Job

TIMEOUT_ANNOTATION = "screwdriver.cd/timeout"
SETUP_STEP = "sd-setup-scm"
# The launcher publishes $SD_ARTIFACTS_DIR in this step, after the teardown steps (as
# Screwdriver's artifact bookend does); like sd-setup-scm it runs the launcher's own code.
ARTIFACTS_STEP = "sd-teardown-artifacts"
# The worker task that starts a build on its engine (builds.dispatch.start_build).
START_TASK = "executors.tasks.start_build"


def timeout_seconds_of(annotations: dict[str, Any]) -> float:
    """Minutes from `screwdriver.cd/timeout` (default and cap from settings), in seconds."""
    raw = annotations.get(TIMEOUT_ANNOTATION)
    minutes = settings.SD_DEFAULT_TIMEOUT_MINUTES
    if raw is not None:
        try:
            minutes = float(raw)
        except (TypeError, ValueError):
            minutes = settings.SD_DEFAULT_TIMEOUT_MINUTES
    if minutes <= 0:
        minutes = settings.SD_DEFAULT_TIMEOUT_MINUTES
    return min(minutes, settings.SD_MAX_TIMEOUT_MINUTES) * 60


def skips_checkout(config: dict[str, Any]) -> bool:
    """Screwdriver's SD_SKIP_REPOSITORY_CLONE: a job that needs no source (the parse-error job)."""
    return (
        str((config.get("environment") or {}).get("SD_SKIP_REPOSITORY_CLONE", "")).lower() == "true"
    )


def _next_number() -> int:
    # Screwdriver numbers builds by their creation time in milliseconds.
    return int(time.time() * 1000)


def create_build(
    *,
    event: Event,
    job: Job,
    status: BuildStatus = BuildStatus.QUEUED,
    cause: str = "",
    parent_build: Build | None = None,
    parent_builds: dict[str, Any] | None = None,
    permutation: int = 0,
) -> Build:
    """Create a build of one job permutation, with its steps, from the event's config."""
    permutations = event.job_configs.get(job.name) or job.permutations
    config: dict[str, Any] = permutations[permutation] if permutations else {}
    build = lifecycle.create(
        job=job,
        event=event,
        permutation=permutation,
        parent_build=parent_build,
        parent_builds=parent_builds or {},
        number=_next_number(),
        cause=cause[:512],
        sha=event.sha,
        container=str(config.get("image", ""))[:256],
        status=status,
        environment=config.get("environment") or {},
        timeout_seconds=timeout_seconds_of(config.get("annotations") or {}),
        template_id=_template_id(config),
    )
    setup = [] if skips_checkout(config) else [(SETUP_STEP, "")]
    # Caches are restored after the checkout and saved after the user's teardown steps; the
    # artifacts are published last.
    restore, save = (
        ([(caches.SETUP_STEP, "")], [(caches.TEARDOWN_STEP, "")])
        if caches.uses_cache(config)
        else ([], [])
    )
    commands = [
        *setup,
        *restore,
        *((str(c.get("name", "")), str(c.get("command", ""))) for c in config.get("commands", [])),
        *save,
        (ARTIFACTS_STEP, ""),
    ]
    Step.objects.bulk_create(
        Step(build=build, position=i, name=name[:64], command=command)
        for i, (name, command) in enumerate(commands)
    )
    return build


def _template_id(config: dict[str, Any]) -> int | None:
    value = config.get("templateId")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def permutation_count(event: Event, job: Job) -> int:
    """How many builds one run of ``job`` makes in ``event``: one per matrix permutation."""
    return max(1, len(event.job_configs.get(job.name) or job.permutations or []))


def create_permutations(*, event: Event, job: Job, **kwargs: Any) -> list[Build]:
    # Every permutation of a matrix job is its own build; all share the trigger's parents.
    created = (
        _create_once(event=event, job=job, permutation=i, **kwargs)
        for i in range(permutation_count(event, job))
    )
    return [b for b in created if b is not None]


def _create_once(**kwargs: Any) -> Build | None:
    # The unique constraint (event, job, permutation) is the last word on "exactly once".
    try:
        with transaction.atomic():
            return create_build(**kwargs)
    except IntegrityError:
        return None


def delete_if_waiting(build: Build | None) -> None:
    """Remove a join build that was still waiting for its parents."""
    if build is not None:
        Build.objects.filter(pk=build.pk, status=BuildStatus.CREATED).delete()


def dispatch_builds(build_ids: list[int]) -> None:
    """Hand the builds that may run now to the workers, once this transaction commits."""
    for build_id in build_ids:
        transaction.on_commit(partial(_enqueue_start, build_id))


def _enqueue_start(build_id: int) -> None:
    async_task(START_TASK, build_id, task_name=f"start-build-{build_id}")


def parent_builds_entry(event: Event, builds: Mapping[str, Build | None]) -> dict[str, Any]:
    """Screwdriver's `parentBuilds`: one entry per pipeline, a remote parent under its own."""
    entry: dict[str, Any] = {str(event.pipeline_id): {"eventId": event.pk, "jobs": {}}}
    for name, b in builds.items():
        remote = workflow.remote_job(name)
        if remote is None:
            entry[str(event.pipeline_id)]["jobs"][name] = b.pk if b else None
            continue
        known = (event.parent_builds or {}).get(str(remote.pipeline_id)) or {}
        slot = entry.setdefault(
            str(remote.pipeline_id),
            {"eventId": b.event_id if b else known.get("eventId"), "jobs": {}},
        )
        slot["jobs"][remote.job] = b.pk if b else (known.get("jobs") or {}).get(remote.job)
    return entry
