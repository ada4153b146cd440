"""After a build ends: its meta into the event, the next jobs, joins, and what follows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from builds import dispatch
from builds.models import Build, BuildStatus, Step
from builds.services import blocking, stages
from builds.services.creation import (
    _create_permutations,
    _delete_if_waiting,
    _dispatch,
    create_build,
    permutation_count,
)
from builds.services.status import (
    _FAILED,
    _SUCCEEDED,
    _job_outcome,
    _transition,
    refresh_event_status,
)
from pipelines import workflow
from pipelines.models import Event, Job

SKIP_FURTHER = "[skip further]"
# How far back a restart looks for the results of the jobs it does not run itself.
MAX_INHERITED_EVENTS = 50


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def create_start_builds(*, event: Event, job_names: Iterable[str], cause: str) -> list[Build]:
    """Queue the first builds of a new event and hand them to the workers after commit."""
    jobs = {
        j.name: j
        for j in Job.objects.filter(pipeline_id=event.pipeline_id, name__in=list(job_names))
    }
    builds: list[Build] = []
    for name in job_names:
        job = jobs.get(name)
        if job is None or job.archived or job.state == Job.State.DISABLED:
            continue
        builds.extend(
            create_build(event=event, job=job, cause=cause, permutation=i)
            for i in range(permutation_count(event, job))
        )
    stages._open_stage_builds(event, builds)
    _dispatch(_settle_virtual(event, builds))
    return builds


def _settle_virtual(event: Event, builds: list[Build]) -> list[int]:
    # Screwdriver never runs a virtual job: its build succeeds at once and the next jobs start.
    # Returns the ids of the builds that do need a worker.
    to_run = []
    for build in builds:
        if build.status != BuildStatus.QUEUED or not workflow.is_virtual(
            event.workflow_graph, build.job.name
        ):
            to_run.append(build.pk)
            continue
        now = timezone.now()
        _transition(
            build.pk,
            allowed=[BuildStatus.QUEUED],
            target=BuildStatus.SUCCESS,
            start_time=now,
            end_time=now,
            status_message="Virtual job: succeeded without running.",
        )
        Step.objects.filter(build=build).delete()
        build.status = BuildStatus.SUCCESS
        _after_finish(build, cleanup=False)
    return blocking._hold_blocked(event, to_run)


def _after_finish(build: Build, *, cleanup: bool = True) -> None:
    # Joins are decided under the event's lock, re-reading the parents from the database, so
    # two parents finishing at once see each other and exactly one of them queues the join.
    event = Event.objects.select_for_update().get(pk=build.event_id)
    if build.meta:
        event.meta = deep_merge(event.meta, build.meta)
        event.save(update_fields=["meta"])
    if build.status in {BuildStatus.SUCCESS, BuildStatus.UNSTABLE}:
        _trigger_next(build, event)
    else:
        _drop_waiting_joins(build, event)
    stages._settle_stage(build, event)
    refresh_event_status(event=event)
    blocking._release_blocked(event.pipeline_id)
    # Other pipelines' events start in a worker after this commit: no lock of this pipeline
    # is held while theirs are taken, and no request waits while their repositories are read.
    enqueue_remote_triggers(build.pk)
    if cleanup:
        dispatch.enqueue_cleanup(build.pk)


def enqueue_remote_triggers(build_id: int) -> None:
    """Hand the build's remote triggers, joins and releases to a worker after commit."""
    transaction.on_commit(
        partial(
            async_task,
            "builds.tasks.trigger_remote_jobs",
            build_id,
            task_name=f"remote-triggers-{build_id}",
        )
    )


def _parent_builds_entry(event: Event, builds: Mapping[str, Build | None]) -> dict[str, Any]:
    # Screwdriver's shape: one entry per pipeline; a remote parent sits under its own pipeline.
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


def _next_jobs(event: Event, job_name: str) -> list[workflow.NextJob]:
    # A job missing from the event's graph (say, the fallback job of a broken file) has
    # nothing after it.
    try:
        return workflow.next_jobs(event.workflow_graph, job_name)
    except ValueError:
        return []


def skips_further(event: Event) -> bool:
    """Whether ``[skip further]`` in the cause or commit message stops after the first jobs."""
    # A restart is asked for by a person: only its own cause message counts, not the commit's.
    commit = "" if event.parent_event_id else str((event.commit or {}).get("message", ""))
    return SKIP_FURTHER in f"{event.cause_message}\n{commit}".lower()


def _remote_outcome(event: Event, remote: workflow.RemoteJob) -> str | None:
    # The remote job's build this event heard of (what started it, or a join's arrival).
    known = ((event.parent_builds or {}).get(str(remote.pipeline_id)) or {}).get("jobs") or {}
    build_id = known.get(remote.job)
    if build_id is None:
        return None
    status = Build.objects.filter(pk=build_id).values_list("status", flat=True).first()
    if status in _SUCCEEDED:
        return BuildStatus.SUCCESS
    if status is None or status in _FAILED:
        return BuildStatus.FAILURE
    return None


def _trigger_next(build: Build, event: Event, finished: str | None = None) -> None:
    # ``finished`` names the node that ended when it is not the build's own job: a remote job
    # (`sd@ID:job`) whose build, in another pipeline, is one parent of a join here.
    finished = finished or build.job.name
    nexts = _next_jobs(event, finished)
    if not nexts or skips_further(event):
        return
    if workflow.is_stage_teardown(finished) and stages._stage_failed(event, finished):
        # What follows a stage runs only when the stage succeeded; joins on it never will.
        _drop_waiting_joins(build, event, finished)
        return
    names = {n.name for n in nexts} | {p for n in nexts for p in n.parents} | {finished}
    jobs = {j.name: j for j in Job.objects.filter(pipeline_id=event.pipeline_id, name__in=names)}
    by_job: dict[str, list[Build]] = {}
    for b in (
        Build.objects.filter(event=event, job__name__in=names)
        .select_related("job")
        .order_by("permutation")
    ):
        by_job.setdefault(b.job.name, []).append(b)

    def outcome(name: str) -> str | None:
        remote = workflow.remote_job(name)
        if remote is not None:
            return _remote_outcome(event, remote)
        job = jobs.get(name)
        expected = permutation_count(event, job) if job is not None else 1
        if name not in by_job and name not in will_run:
            # A restart counts the earlier events' result of a job it will not run itself.
            by_job[name] = _inherited_builds(event, name)
        return _job_outcome(by_job.get(name, []), expected)

    will_run = (
        workflow.downstream(event.workflow_graph, event.start_from)
        if event.parent_event_id
        else set()
    )
    own = outcome(finished)
    if own is None:
        return  # other permutations of this job are still running
    if own != BuildStatus.SUCCESS:
        _drop_waiting_joins(build, event, finished)
        return
    to_start: list[Build] = []
    for nxt in nexts:
        job = jobs.get(nxt.name)
        if job is None or job.archived or job.state == Job.State.DISABLED:
            continue
        current = by_job.get(nxt.name, [])
        if not nxt.join:
            if not current:
                to_start += _create_permutations(
                    event=event,
                    job=job,
                    status=BuildStatus.QUEUED,
                    cause=f"Triggered by {finished}",
                    parent_build=build,
                    parent_builds=_parent_builds_entry(event, {finished: build}),
                )
            continue
        outcomes = {name: outcome(name) for name in nxt.parents}
        outcomes[finished] = own
        if any(o == BuildStatus.FAILURE for o in outcomes.values()):
            for waiting in current:
                _delete_if_waiting(waiting)
            continue
        ready = all(o == BuildStatus.SUCCESS for o in outcomes.values())
        parents: dict[str, Build | None] = {
            name: (by_job[name][-1] if by_job.get(name) else None) for name in nxt.parents
        }
        parents[finished] = build
        parent_builds = _parent_builds_entry(event, parents)
        if not current:
            created = _create_permutations(
                event=event,
                job=job,
                status=BuildStatus.QUEUED if ready else BuildStatus.CREATED,
                cause=f"Triggered by {', '.join(sorted(parents))}",
                parent_build=build,
                parent_builds=parent_builds,
            )
            if ready:
                to_start += created
        elif ready:
            waiting_ids = [b.pk for b in current if b.status == BuildStatus.CREATED]
            promoted = Build.objects.filter(pk__in=waiting_ids, status=BuildStatus.CREATED)
            if promoted.update(
                status=BuildStatus.QUEUED, parent_build=build, parent_builds=parent_builds
            ):
                for waiting in current:
                    if waiting.pk in waiting_ids:
                        waiting.status = BuildStatus.QUEUED
                        to_start.append(waiting)
    stages._open_stage_builds(event, to_start)
    # Virtual jobs settle after every decision above, so the snapshot stays true meanwhile.
    _dispatch(_settle_virtual(event, to_start))


def _inherited_builds(event: Event, job_name: str) -> list[Build]:
    # The nearest ancestor event (restart of a restart...) that has builds of the job.
    ancestor_id = event.parent_event_id
    for _ in range(MAX_INHERITED_EVENTS):
        if ancestor_id is None:
            break
        found = list(
            Build.objects.filter(event_id=ancestor_id, job__name=job_name)
            .select_related("job")
            .order_by("permutation")
        )
        if found:
            return found
        ancestor_id = (
            Event.objects.filter(pk=ancestor_id).values_list("parent_event_id", flat=True).first()
        )
    return []


def _drop_waiting_joins(build: Build, event: Event, finished: str | None = None) -> None:
    # A failed parent means its joins can never run: remove the builds that waited for it.
    joins = [n.name for n in _next_jobs(event, finished or build.job.name) if n.join]
    if joins:
        Build.objects.filter(event=event, job__name__in=joins, status=BuildStatus.CREATED).delete()
