"""Restarts: a new event from a job of an earlier one, or from all of its failed jobs."""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction

from builds import services as build_services
from builds.models import FAILED_STATUSES, Build, BuildStatus
from pipelines.config.annotations import starts_by_hand
from pipelines.models import Event, Pipeline
from pipelines.services.events import Creator, start_event
from pipelines.services.pipelines import PipelineError
from pipelines.services.pull_requests import restart_pr

# startFrom of a restart that runs again every job of its parent event that failed or was
# aborted, in one new event (Screwdriver issue 3251).
RESTART_FAILED = "~failed"
# What "failed" means here: COLLAPSED gave way to a newer event's build and is not restarted.
RESTARTED_STATUSES = frozenset(FAILED_STATUSES) - {BuildStatus.COLLAPSED}


def failed_jobs(event: Event) -> list[str]:
    """The jobs of `event` that have a FAILURE or ABORTED build, in the order they ran."""
    names = (
        Build.objects.filter(event=event, status__in=sorted(RESTARTED_STATUSES))
        .order_by("id")
        .values_list("job__name", flat=True)
    )
    return list(dict.fromkeys(names))


_PR_PREFIX = re.compile(r"PR-[0-9]+:")


def _first_configs(
    pipeline: Pipeline, names: list[str], event: Event | None
) -> dict[str, dict[str, Any]]:
    """Each job's first permutation: as `event` ran it, else as the pipeline has it now (one
    query for all the jobs the event does not hold)."""
    snapshot = event.job_configs if event is not None else {}
    configs = {n: (snapshot.get(n) or [{}])[0] for n in names if n in snapshot}
    missing = [n for n in names if n not in configs]
    if missing:
        for name, permutations in pipeline.jobs.filter(name__in=missing).values_list(
            "name", "permutations"
        ):
            configs[name] = (permutations or [{}])[0]
    return configs


def jobs_started_by_hand(*, pipeline: Pipeline, names: list[str], event: Event | None) -> list[str]:
    """The jobs of `names` that people may start (`manualStartEnabled` is not false)."""
    bare = {name: _PR_PREFIX.sub("", name, count=1) for name in names}
    configs = _first_configs(pipeline, sorted(set(bare.values())), event)
    return [name for name in names if starts_by_hand(configs.get(bare[name], {}))]


def manual_start_refusal(
    *, pipeline: Pipeline, start_from: str, parent_event: Event | None = None
) -> str | None:
    """Why a person may not start `start_from` (a job whose `manualStartEnabled` is false, or
    a restart of failed jobs that include one), or None.

    A restart reads the job as its event ran it; a new start, as the pipeline has it now.
    """
    if start_from == RESTART_FAILED:
        names = failed_jobs(parent_event) if parent_event is not None else []
    elif start_from.startswith("~"):
        return None  # a trigger starts what it starts, as it would without a person
    else:
        names = [start_from]
    allowed = jobs_started_by_hand(pipeline=pipeline, names=names, event=parent_event)
    for name in names:
        if name not in allowed:
            return (
                f"Job {name} cannot be started by hand: its screwdriver.cd/manualStartEnabled "
                "annotation is false, so only its triggers start it."
            )
    return None


def restart_event(
    *,
    parent_event: Event,
    start_from: str,
    creator: Creator,
    cause_message: str = "",
    meta: dict[str, Any] | None = None,
) -> Event:
    """A new event from a job of an earlier one (or, from `~failed`, from every job of it that
    failed): its sha, its meta under the new, its group."""
    job_names: list[str] | None = None
    if start_from == RESTART_FAILED:
        job_names = failed_jobs(parent_event)
        if not job_names:
            raise PipelineError(
                f"Event {parent_event.pk} has no failed or aborted build to restart.", status=422
            )
    if parent_event.is_pull_request:
        # A pull request's job restarts as a PR event again, under the same secret rules.
        return restart_pr(
            parent_event=parent_event, start_from=start_from, creator=creator, job_names=job_names
        )
    with transaction.atomic():
        event = start_event(
            pipeline=parent_event.pipeline,
            start_from=start_from,
            creator=creator,
            sha=parent_event.sha,
            cause_message=cause_message,
            parent_event=parent_event,
            meta=build_services.deep_merge(parent_event.meta, meta or {}),
            job_names=job_names,
            # A ~commit:branch event restarts on its branch, with the pipeline's jobs.
            branch=parent_event.base_branch or None,
        )
        event.group_event_id = parent_event.group_event_id or parent_event.pk
        event.save(update_fields=["group_event"])
    return event
