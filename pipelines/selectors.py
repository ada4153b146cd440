"""Reads of pipelines, jobs and events for the UI, in a fixed number of queries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.shortcuts import get_object_or_404
from django.utils import timezone

from builds.models import ACTIVE_STATUSES, Build
from pipelines.models import Event, Job, Pipeline

RECENT_EVENTS = 20
ACTIVE_EVENT_STATUSES = frozenset({Event.Status.CREATED, Event.Status.IN_PROGRESS})


def duration_text(start: datetime | None, end: datetime | None) -> str:
    """A short human duration ("1h 02m", "3m 04s", "12s", "0.4s"); a running one counts to now."""
    if start is None:
        return ""
    exact = max(0.0, ((end or timezone.now()) - start).total_seconds())
    if exact < 10:
        # Most builds here take well under a second: "0s" would hide that they ran at all.
        return f"{exact:.1f}s"
    seconds = int(exact)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def first_line(text: str) -> str:
    """The first line of a commit message."""
    return text.strip().splitlines()[0] if text.strip() else ""


@dataclass(frozen=True)
class JobRow:
    """A job of the pipeline page: its last build and the jobs or triggers it requires."""

    job: Job
    last_build: Build | None
    requires: list[str]

    @property
    def duration(self) -> str:
        b = self.last_build
        return duration_text(b.start_time, b.end_time) if b else ""


@dataclass(frozen=True)
class EventRow:
    """An event of the pipeline page with its builds, ordered by job name."""

    event: Event
    builds: list[Build] = field(default_factory=list)

    @property
    def short_sha(self) -> str:
        return self.event.sha[:7]

    @property
    def message(self) -> str:
        return first_line(str((self.event.commit or {}).get("message", "")))

    @property
    def creator(self) -> str:
        creator = self.event.creator or {}
        return str(creator.get("name") or creator.get("username") or "")

    @property
    def is_active(self) -> bool:
        return self.event.status in ACTIVE_EVENT_STATUSES or any(
            b.status in ACTIVE_STATUSES for b in self.builds
        )

    @property
    def duration(self) -> str:
        starts = [b.start_time for b in self.builds if b.start_time]
        if not starts:
            return ""
        ends = [b.end_time for b in self.builds]
        end = None if (self.is_active or None in ends) else max(e for e in ends if e)
        return duration_text(min(starts), end)


def pipeline_list() -> QuerySet[Pipeline]:
    """Every pipeline with its last event, in one query."""
    return Pipeline.objects.select_related("last_event").order_by("name", "id")


def pipeline_of(pipeline_id: int) -> Pipeline:
    """The pipeline or a 404."""
    return get_object_or_404(Pipeline, pk=pipeline_id)


def branch_of(pipeline: Pipeline) -> str:
    """The branch the pipeline follows, from its SCM repository data."""
    return str((pipeline.scm_repo or {}).get("branch", ""))


def requires_by_job(graph: dict[str, Any]) -> dict[str, list[str]]:
    """For each node of a workflow graph, the sources of the edges that end at it."""
    requires: dict[str, list[str]] = {}
    for edge in graph.get("edges", []) or []:
        src, dest = str(edge.get("src", "")), str(edge.get("dest", ""))
        requires.setdefault(dest, [])
        if src not in requires[dest]:
            requires[dest].append(src)
    return requires


def graph_order(graph: dict[str, Any], names: Iterable[str]) -> list[str]:
    """Job names in workflow order (parents first, then graph node order); others after."""
    wanted = list(names)
    nodes = [str(n.get("name", "")) for n in graph.get("nodes", []) or []]
    requires = requires_by_job(graph)
    position = {name: i for i, name in enumerate(nodes)}
    depth: dict[str, int] = {}

    def depth_of(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name in depth:
            return depth[name]
        parents = [p for p in requires.get(name, []) if p not in seen]
        value = 1 + max((depth_of(p, seen | {name}) for p in parents), default=-1)
        depth[name] = value
        return value

    in_graph = sorted(
        (n for n in wanted if n in position), key=lambda n: (depth_of(n), position[n])
    )
    return in_graph + sorted(n for n in wanted if n not in position)


def job_rows(pipeline: Pipeline) -> list[JobRow]:
    """The pipeline's jobs that are not archived, in workflow order, each with its last build."""
    last_build_id = Subquery(
        Build.objects.filter(job=OuterRef("pk")).order_by("-id").values("id")[:1]
    )
    jobs = list(
        Job.objects.filter(pipeline=pipeline, archived=False).annotate(last_build_id=last_build_id)
    )
    builds = Build.objects.in_bulk([j.last_build_id for j in jobs if j.last_build_id])
    by_name = {j.name: j for j in jobs}
    requires = requires_by_job(pipeline.workflow_graph or {})
    return [
        JobRow(
            job=by_name[name],
            last_build=builds.get(by_name[name].last_build_id),
            requires=requires.get(name, []),
        )
        for name in graph_order(pipeline.workflow_graph or {}, by_name)
    ]


def event_rows(pipeline: Pipeline, limit: int = RECENT_EVENTS) -> list[EventRow]:
    """The pipeline's most recent events, each with its builds and their jobs."""
    # The badges need only status, job and times: leave the large JSON columns behind.
    builds = (
        Build.objects.select_related("job")
        .defer("meta", "environment", "stats", "executor_state", "parent_builds")
        .defer("job__permutations")
        .order_by("job__name", "permutation", "id")
    )
    events = (
        Event.objects.filter(pipeline=pipeline)
        .order_by("-id")
        .prefetch_related(Prefetch("builds", queryset=builds, to_attr="ui_builds"))[:limit]
    )
    return [EventRow(event=e, builds=list(e.ui_builds)) for e in events]
