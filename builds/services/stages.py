"""Stages: a stage build follows its jobs; a failed stage still gets its teardown."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from builds import lifecycle
from builds.models import FAILED_STATUSES, Build, BuildStatus, StageBuild
from builds.services.creation import (
    create_permutations,
    delete_if_waiting,
    parent_builds_entry,
    permutation_count,
)
from pipelines import workflow
from pipelines.models import Event, Job, Stage


def open_stage_builds(event: Event, builds: Iterable[Build]) -> None:
    """Open the stage builds of the stages these new builds belong to."""
    # A stage build starts with the first of its jobs' builds that is about to run.
    names = {
        workflow.stage_of(event.workflow_graph, b.job.name)
        for b in builds
        if b.status != BuildStatus.CREATED
    }
    names.discard(None)
    if not names:
        return
    for stage in Stage.objects.filter(pipeline_id=event.pipeline_id, name__in=names):
        StageBuild.objects.get_or_create(
            stage=stage,
            event=event,
            defaults={
                "status": BuildStatus.RUNNING,
                "workflow_graph": workflow.stage_graph(event.workflow_graph, stage.name),
            },
        )


def _stage_members(graph: dict[str, Any], stage: str) -> list[str]:
    # The jobs whose failure fails the stage: its own jobs and its setup, not its teardown.
    return [*workflow.stage_jobs(graph, stage), workflow.stage_setup(stage)]


def stage_failed(event: Event, job_name: str) -> bool:
    """Whether a job of the stage ``job_name`` belongs to did not succeed in ``event``."""
    stage = workflow.stage_of(event.workflow_graph, job_name)
    if stage is None:
        return False
    return Build.objects.filter(
        event=event,
        job__name__in=_stage_members(event.workflow_graph, stage),
        status__in=list(FAILED_STATUSES),
    ).exists()


def settle_stage(build: Build, event: Event) -> list[Build]:
    """Bring the stage of an ended build up to date; return the teardown builds it created."""
    # The stage build follows its jobs; a failed stage job still gets the stage's teardown,
    # once nothing else of the stage runs, and what follows the teardown does not run.
    name = build.job.name
    stage = workflow.stage_of(event.workflow_graph, name)
    if stage is None:
        return []
    stage_builds = StageBuild.objects.filter(
        event=event, stage__pipeline_id=event.pipeline_id, stage__name=stage
    )
    teardown = workflow.stage_teardown(stage)
    failed = stage_failed(event, teardown)
    if name == teardown:
        ended = lifecycle.job_result(
            list(Build.objects.filter(event=event, job_id=build.job_id)),
            permutation_count(event, build.job),
        )
        if ended is not None:
            ok = ended == BuildStatus.SUCCESS and not failed
            stage_builds.update(status=BuildStatus.SUCCESS if ok else BuildStatus.FAILURE)
        return []
    if not failed:
        return []
    stage_builds.update(status=BuildStatus.FAILURE)
    members = _stage_members(event.workflow_graph, stage)
    if Build.objects.filter(event=event, job__name__in=members).active().exists():
        return []  # the teardown waits for the stage's other jobs to end
    existing = list(Build.objects.filter(event=event, job__name=teardown))
    if any(b.status != BuildStatus.CREATED for b in existing):
        return []
    for waiting in existing:
        delete_if_waiting(waiting)
    job = Job.objects.filter(pipeline_id=event.pipeline_id, name=teardown).first()
    if job is None or job.archived or job.state == Job.State.DISABLED:
        return []
    culprit = (
        Build.objects.filter(event=event, job__name__in=members, status__in=list(FAILED_STATUSES))
        .select_related("job")
        .order_by("pk")
        .first()
    ) or build
    created = create_permutations(
        event=event,
        job=job,
        status=BuildStatus.QUEUED,
        cause=f"Teardown of stage {stage}: {culprit.job.name} did not succeed",
        parent_build=culprit,
        parent_builds=parent_builds_entry(event, {culprit.job.name: culprit}),
    )
    return created
