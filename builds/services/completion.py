"""After a build ends: the next jobs of its event, its joins, meta merging.

Rules that decide and create, and return what was created: starting those builds (virtual
jobs, blocking, freeze windows, dispatch) is the settlement's work (`settle`).
"""

from __future__ import annotations

from typing import Any

from builds import lifecycle
from builds.models import FAILED_STATUSES, SUCCEEDED_STATUSES, Build, BuildStatus
from builds.services import stages
from builds.services.creation import (
    create_permutations,
    delete_if_waiting,
    parent_builds_entry,
    permutation_count,
)
from pipelines import workflow
from pipelines.models import Event, Job

SKIP_FURTHER = "[skip further]"
# How far back a restart looks for the results of the jobs it does not run itself.
MAX_INHERITED_EVENTS = 50


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``, dictionaries merged key by key (a build's meta into its event)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


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
    if status in SUCCEEDED_STATUSES:
        return BuildStatus.SUCCESS
    if status is None or status in FAILED_STATUSES:
        return BuildStatus.FAILURE
    return None


def trigger_next(build: Build, event: Event, finished: str | None = None) -> list[Build]:
    """The builds that follow ``build`` in ``event``: created now, to be started by the caller."""
    # ``finished`` names the node that ended when it is not the build's own job: a remote job
    # (`sd@ID:job`) whose build, in another pipeline, is one parent of a join here.
    finished = finished or build.job.name
    nexts = _next_jobs(event, finished)
    if not nexts or skips_further(event):
        return []
    if workflow.is_stage_teardown(finished) and stages.stage_failed(event, finished):
        # What follows a stage runs only when the stage succeeded; joins on it never will.
        drop_waiting_joins(build, event, finished)
        return []
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
        return lifecycle.job_result(by_job.get(name, []), expected)

    will_run: set[str] = (
        set().union(
            *(
                workflow.downstream(event.workflow_graph, start)
                for start in (event.restart_jobs or [event.start_from])
            )
        )
        if event.parent_event_id
        else set()
    )
    own = outcome(finished)
    if own is None:
        return []  # other permutations of this job are still running
    if own != BuildStatus.SUCCESS:
        drop_waiting_joins(build, event, finished)
        return []
    to_start: list[Build] = []
    for nxt in nexts:
        job = jobs.get(nxt.name)
        if job is None or job.archived or job.state == Job.State.DISABLED:
            continue
        current = by_job.get(nxt.name, [])
        if not nxt.join:
            if not current:
                to_start += create_permutations(
                    event=event,
                    job=job,
                    status=BuildStatus.QUEUED,
                    cause=f"Triggered by {finished}",
                    parent_build=build,
                    parent_builds=parent_builds_entry(event, {finished: build}),
                )
            continue
        outcomes = {name: outcome(name) for name in nxt.parents}
        outcomes[finished] = own
        if any(o == BuildStatus.FAILURE for o in outcomes.values()):
            for waiting in current:
                delete_if_waiting(waiting)
            continue
        ready = all(o == BuildStatus.SUCCESS for o in outcomes.values())
        parents: dict[str, Build | None] = {
            name: (by_job[name][-1] if by_job.get(name) else None) for name in nxt.parents
        }
        parents[finished] = build
        parent_builds = parent_builds_entry(event, parents)
        if not current:
            created = create_permutations(
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
            for waiting in current:
                if waiting.status == BuildStatus.CREATED and lifecycle.transition(
                    waiting.pk,
                    BuildStatus.QUEUED,
                    only_from=[BuildStatus.CREATED],
                    strict=False,
                    parent_build=build,
                    parent_builds=parent_builds,
                ):
                    waiting.status = BuildStatus.QUEUED
                    to_start.append(waiting)
    return to_start


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


def drop_waiting_joins(build: Build, event: Event, finished: str | None = None) -> None:
    """Delete the joins after ``build``'s job that were still waiting: they will never run."""
    # A failed parent means its joins can never run: remove the builds that waited for it.
    joins = [n.name for n in _next_jobs(event, finished or build.job.name) if n.join]
    if joins:
        Build.objects.filter(event=event, job__name__in=joins, status=BuildStatus.CREATED).delete()
