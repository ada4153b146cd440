"""Records the workflow graph implies: a pipeline's stages and its remote triggers."""

from __future__ import annotations

from typing import Any

from pipelines import workflow
from pipelines.models import Job, Pipeline, Stage, Trigger


def sync_stages_and_triggers(
    *, pipeline: Pipeline, config: dict[str, Any], jobs: dict[str, Job]
) -> None:
    """Make the pipeline's stage and trigger rows match a parsed config (not a broken one)."""
    # A broken file says nothing about the workflow: keep what the last good one said.
    if config.get("errors"):
        return
    _sync_stages(pipeline, config.get("stages") or {}, jobs)
    _sync_triggers(pipeline, config.get("workflowGraph") or {})


def _sync_stages(pipeline: Pipeline, stages: dict[str, Any], jobs: dict[str, Job]) -> None:
    existing = {s.name: s for s in Stage.objects.filter(pipeline=pipeline)}
    for name, declared in stages.items():
        members = [jobs[j].pk for j in declared.get("jobs") or [] if j in jobs]
        fields = {
            "description": str(declared.get("description") or "")[:256],
            "job_ids": members,
            "setup": jobs.get(workflow.stage_setup(name)),
            "teardown": jobs.get(workflow.stage_teardown(name)),
            "archived": False,
        }
        stage = existing.get(name)
        if stage is None:
            Stage.objects.create(pipeline=pipeline, name=name, **fields)
            continue
        for attr, value in fields.items():
            setattr(stage, attr, value)
        stage.save()
    # A stage dropped from the file is archived, as its jobs are, so old stage builds keep it.
    Stage.objects.filter(pipeline=pipeline).exclude(name__in=list(stages)).update(archived=True)


def _sync_triggers(pipeline: Pipeline, graph: dict[str, Any]) -> None:
    wanted = set()
    for src, dest in workflow.remote_sources(graph):
        remote = workflow.remote_job(src)
        if remote is None or remote.pipeline_id == pipeline.pk:
            continue  # a pipeline never triggers itself
        prefix = "sd" if remote.join else "~sd"
        wanted.add((src, f"{prefix}@{pipeline.pk}:{dest}"))
    have = set(Trigger.objects.filter(pipeline=pipeline).values_list("src", "dest"))
    for src, dest in have - wanted:
        Trigger.objects.filter(pipeline=pipeline, src=src, dest=dest).delete()
    Trigger.objects.bulk_create(
        [Trigger(pipeline=pipeline, src=src, dest=dest) for src, dest in wanted - have],
        ignore_conflicts=True,
    )
