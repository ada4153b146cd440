"""Reads of pipelines, jobs and events for the UI, in a fixed number of queries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Count, F, Max, Min, Q, QuerySet, Window
from django.db.models.fields.json import KT
from django.db.models.functions import RowNumber
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone

from builds.models import ACTIVE_STATUSES, Build, BuildStatus, StageBuild
from pipelines.graph_layout import Permutation, remote_pipeline_id
from pipelines.models import Collection, Event, Job, Pipeline, PipelinePermission, Secret

RECENT_EVENTS = 20
JOB_HISTORY = 5
SUMMARY_ORDER = (
    "RUNNING",
    "QUEUED",
    "BLOCKED",
    "FROZEN",
    "CREATED",
    "SUCCESS",
    "UNSTABLE",
    "FAILURE",
    "ABORTED",
    "COLLAPSED",
)
ACTIVE_EVENT_STATUSES = frozenset({Event.Status.CREATED, Event.Status.IN_PROGRESS})
# The badges and lists need only status, job and times: leave the large JSON columns behind.
LIGHT_BUILD_DEFER = ("meta", "environment", "stats", "executor_state", "parent_builds")


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
class EventRow:
    """An event of the events list with its builds counted by status (not loaded one by one)."""

    event: Event
    counts: dict[str, int] = field(default_factory=dict)
    start: datetime | None = None
    end: datetime | None = None

    @property
    def short_sha(self) -> str:
        return self.event.sha[:7]

    @property
    def label(self) -> str:
        """The label its builds set in meta (`meta set label ...`), or ""."""
        return str(getattr(self.event, "meta_label", None) or "")

    @property
    def message(self) -> str:
        return first_line(str((self.event.commit or {}).get("message", "")))

    @property
    def author(self) -> str:
        author = (self.event.commit or {}).get("author") or {}
        return (
            str(author.get("name") or author.get("username") or "")
            if isinstance(author, dict)
            else ""
        )

    @property
    def creator(self) -> str:
        creator = self.event.creator or {}
        return str(creator.get("name") or creator.get("username") or "")

    @property
    def pr_url(self) -> str:
        """The pull request's web page; anything but an http(s) link is not followed."""
        url = self.event.pr.get("url") if isinstance(self.event.pr, dict) else None
        return url if isinstance(url, str) and url.startswith(("https://", "http://")) else ""

    @property
    def is_active(self) -> bool:
        return self.event.status in ACTIVE_EVENT_STATUSES or any(
            self.counts.get(s) for s in ACTIVE_STATUSES
        )

    @property
    def build_summary(self) -> list[tuple[str, int]]:
        """(status, count) pairs in a fixed order, for the compact badges of the list."""
        return [(s, self.counts[s]) for s in SUMMARY_ORDER if self.counts.get(s)]

    @property
    def duration(self) -> str:
        return duration_text(self.start, None if self.is_active else self.end)


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


def event_rows(
    pipeline: Pipeline,
    *,
    limit: int = RECENT_EVENTS,
    before: int | None = None,
    pr_num: int | None = None,
) -> list[EventRow]:
    """The pipeline's most recent events (older than `before`; of one pull request with
    `pr_num`), builds counted per status."""
    events_qs = (
        Event.objects.filter(pipeline=pipeline)
        .defer("workflow_graph", "job_configs", "meta")
        # The one key of the (deferred, maybe large) meta the list shows.
        .annotate(meta_label=KT("meta__label"))
    )
    if pr_num is not None:
        events_qs = events_qs.filter(type=Event.Type.PR, pr_num=pr_num)
    if before is not None:
        events_qs = events_qs.filter(pk__lt=before)
    events = list(events_qs.order_by("-id")[:limit])
    # One grouped query for every event of the page, however many builds each one has.
    stats = (
        Build.objects.filter(event_id__in=[e.pk for e in events])
        .values("event_id", "status")
        .annotate(n=Count("id"), first_start=Min("start_time"), last_end=Max("end_time"))
        .order_by()
    )
    counts: dict[int, dict[str, int]] = {}
    starts: dict[int, list[datetime]] = {}
    ends: dict[int, list[datetime]] = {}
    for row in stats:
        counts.setdefault(row["event_id"], {})[row["status"]] = row["n"]
        if row["first_start"]:
            starts.setdefault(row["event_id"], []).append(row["first_start"])
        if row["last_end"]:
            ends.setdefault(row["event_id"], []).append(row["last_end"])
    return [
        EventRow(
            event=e,
            counts=counts.get(e.pk, {}),
            start=min(starts[e.pk]) if e.pk in starts else None,
            end=max(ends[e.pk]) if e.pk in ends else None,
        )
        for e in events
    ]


def event_of(pipeline: Pipeline, event_id: int | None) -> Event | None:
    """The event to draw: the one asked for (404 if not of this pipeline), else the latest."""
    if event_id is not None:
        return get_object_or_404(Event, pk=event_id, pipeline=pipeline)
    return Event.objects.filter(pipeline=pipeline).order_by("-id").first()


def builds_of_event(event: Event) -> list[Build]:
    """The builds of one event with their jobs, without the large JSON columns.

    `environment` stays: it is what tells a matrix job's permutations apart.
    """
    light = tuple(f for f in LIGHT_BUILD_DEFER if f != "environment")
    return list(
        Build.objects.filter(event=event)
        .select_related("job")
        .defer(*light)
        .defer("job__permutations")
        .order_by("job__name", "permutation", "id")
    )


# While a permutation is still going the job is too, shown by the furthest along; once all
# have ended the job's outcome is its worst permutation's.
_ACTIVE_ORDER = (
    BuildStatus.RUNNING,
    BuildStatus.QUEUED,
    BuildStatus.BLOCKED,
    BuildStatus.FROZEN,
    BuildStatus.CREATED,
)
_OUTCOME_ORDER = (
    BuildStatus.FAILURE,
    BuildStatus.ABORTED,
    BuildStatus.COLLAPSED,
    BuildStatus.UNSTABLE,
    BuildStatus.SUCCESS,
)


def job_outcome(statuses: Iterable[str]) -> str:
    """A job's status from its permutations' statuses: running while any runs, else the worst."""
    present = set(statuses)
    for status in (*_ACTIVE_ORDER, *_OUTCOME_ORDER):
        if status in present:
            return str(status)
    return next(iter(sorted(present)), "")


def matrix_values(builds: list[Build]) -> dict[int, str]:
    """Per build id, the environment values (and image) that set it apart from its siblings."""
    keys: set[str] = set()
    for build in builds:
        keys |= set(build.environment or {})
    differing = sorted(
        k for k in keys if len({str((b.environment or {}).get(k, "")) for b in builds}) > 1
    )
    images_differ = len({b.container for b in builds}) > 1
    labels = {}
    for build in builds:
        env = build.environment or {}
        parts = [f"{k}={env.get(k, '')}" for k in differing]
        if images_differ:
            parts.append(f"image={build.container}")
        labels[build.pk] = " ".join(parts) or f"permutation {build.permutation}"
    return labels


@dataclass(frozen=True)
class PermutationRow:
    """One permutation's build, with its link and the matrix values that name it."""

    build: Build
    href: str
    label: str

    @property
    def title(self) -> str:
        """The mark's tooltip: values, status and, for a FROZEN or BLOCKED build, why."""
        why = f" — {self.build.status_message}" if self.build.status_message else ""
        return f"{self.label}: {self.build.status}{why}"


@dataclass(frozen=True)
class JobBuilds:
    """A job's builds in one event, permutations grouped, with the job's overall status."""

    name: str
    status: str
    href: str
    permutations: list[PermutationRow]

    @property
    def is_matrix(self) -> bool:
        return len(self.permutations) > 1

    @property
    def build(self) -> Build:
        return self.permutations[0].build

    def marks(self) -> list[Permutation]:
        return [Permutation(p.build.status, p.href, p.title) for p in self.permutations]


def group_builds(builds: Iterable[Build], pipeline_id: int) -> list[JobBuilds]:
    """The event's builds grouped by job (name order), permutations in order under each."""
    by_job: dict[str, list[Build]] = {}
    for build in builds:
        by_job.setdefault(build.job.name, []).append(build)
    groups = []
    for name, members in by_job.items():
        members.sort(key=lambda b: (b.permutation, b.pk))
        labels = matrix_values(members) if len(members) > 1 else {}
        rows = [
            PermutationRow(
                build=b,
                href=reverse("builds:detail", args=[pipeline_id, b.pk]),
                label=labels.get(b.pk, ""),
            )
            for b in members
        ]
        groups.append(
            JobBuilds(
                name=name,
                status=job_outcome(b.status for b in members),
                href=rows[0].href,
                permutations=rows,
            )
        )
    return groups


def siblings_of(build: Build) -> list[PermutationRow]:
    """Every permutation of the build's job in its event (one query), labelled by matrix values."""
    members = list(
        Build.objects.filter(event_id=build.event_id, job_id=build.job_id)
        .only("id", "permutation", "status", "status_message", "environment", "container")
        .order_by("permutation", "id")
    )
    if len(members) < 2:
        return []
    labels = matrix_values(members)
    pipeline_id = build.job.pipeline_id
    return [
        PermutationRow(
            build=b, href=reverse("builds:detail", args=[pipeline_id, b.pk]), label=labels[b.pk]
        )
        for b in members
    ]


def remote_links(user: Any, graph: dict[str, Any]) -> dict[int, str]:
    """Links to the pipelines of a graph's remote nodes that exist and the viewer may read.

    One query, and none for a graph without remote nodes; a pipeline left out is drawn as
    plain text, so its existence is not revealed.
    """
    names = [str(n.get("name", "")) for n in graph.get("nodes", []) or [] if isinstance(n, dict)]
    ids = {pid for pid in map(remote_pipeline_id, names) if pid is not None}
    if not ids:
        return {}
    readable = readable_pipelines(user).filter(pk__in=ids).values_list("pk", flat=True)
    return {pid: reverse("pipelines:detail", args=[pid]) for pid in readable}


def stage_builds_of(event: Event) -> list[StageBuild]:
    """The event's stage builds with their stages, in stage name order."""
    return list(
        StageBuild.objects.filter(event=event)
        .select_related("stage")
        .defer("workflow_graph")
        .order_by("stage__name")
    )


@dataclass(frozen=True)
class Upstream:
    """The other pipeline's build that triggered an event (`~sd@ID:job`)."""

    label: str
    href: str


def upstream_of(event: Event, user: Any) -> Upstream | None:
    """Who triggered a remote event, linked to that build only if the viewer may read it."""
    if event.parent_build_id is None:
        return None
    parent = (
        Build.objects.filter(pk=event.parent_build_id)
        .select_related("job")
        .only("id", "job__name", "job__pipeline_id")
        .first()
    )
    if parent is None or parent.job.pipeline_id == event.pipeline_id:
        return None
    source = parent.job.pipeline_id
    readable = readable_pipelines(user).filter(pk=source).exists()
    return Upstream(
        label=f"sd@{source}:{parent.job.name}",
        href=reverse("builds:detail", args=[source, parent.pk]) if readable else "",
    )


@dataclass(frozen=True)
class JobHistoryRow:
    """A job of the jobs list with its most recent builds, newest first."""

    job: Job
    builds: list[Build]
    requires: list[str]

    @property
    def last_build(self) -> Build | None:
        return self.builds[0] if self.builds else None

    @property
    def duration(self) -> str:
        b = self.last_build
        return duration_text(b.start_time, b.end_time) if b else ""


def job_history(pipeline: Pipeline, *, per_job: int = JOB_HISTORY) -> list[JobHistoryRow]:
    """Every job that is not archived, in workflow order, with its last `per_job` builds."""
    jobs = list(Job.objects.filter(pipeline=pipeline, archived=False).defer("permutations"))
    # A window function numbers each job's builds, so the history is one query for any size.
    ranked = (
        Build.objects.filter(job__pipeline=pipeline, job__archived=False)
        .defer(*LIGHT_BUILD_DEFER)
        .annotate(
            rank=Window(expression=RowNumber(), partition_by=[F("job_id")], order_by=F("id").desc())
        )
        .filter(rank__lte=per_job)
        .order_by("job_id", "-id")
    )
    by_job: dict[int, list[Build]] = {}
    for build in ranked:
        by_job.setdefault(build.job_id, []).append(build)
    by_name = {j.name: j for j in jobs}
    requires = requires_by_job(pipeline.workflow_graph or {})
    return [
        JobHistoryRow(
            job=by_name[name],
            builds=by_job.get(by_name[name].pk, []),
            requires=requires.get(name, []),
        )
        for name in graph_order(pipeline.workflow_graph or {}, by_name)
    ]


def readable_pipelines(user: Any) -> QuerySet[Pipeline]:
    """The pipelines a signed-in person may read: public ones and those they have a role on."""
    return Pipeline.objects.readable_by(user)


def children_of(pipeline: Pipeline, user: Any) -> list[Pipeline]:
    """The child pipelines the person may read; none asked for when its file lists none."""
    if not pipeline.child_pipelines_config:
        return []
    return list(readable_pipelines(user).filter(config_pipeline=pipeline).order_by("name", "id"))


def collections_of(user: Any, pipeline: Pipeline) -> list[tuple[Collection, bool]]:
    """The person's collections, each with whether it holds `pipeline`."""
    holding = set(pipeline.collections.filter(user=user).values_list("pk", flat=True))
    return [(c, c.pk in holding) for c in Collection.objects.filter(user=user)]


def pipeline_home(
    user: Any, *, query: str = "", collection: str | Collection = "all"
) -> QuerySet[Pipeline]:
    """The home page's pipelines: readable ones, searched by name or URL, in a collection."""
    pipelines = readable_pipelines(user).select_related("last_event")
    pipelines = pipelines.defer(
        "workflow_graph",
        "annotations",
        "last_event__workflow_graph",
        "last_event__job_configs",
        "last_event__meta",
    )
    if query:
        pipelines = pipelines.filter(Q(name__icontains=query) | Q(checkout_url__icontains=query))
    if isinstance(collection, Collection):
        pipelines = pipelines.filter(collections=collection)
    elif collection == "mine":
        # "Mine" is the pipelines the person created or holds a role on: no stars to keep.
        mine = PipelinePermission.objects.filter(user_id=user.pk).values("pipeline_id")
        pipelines = pipelines.filter(Q(creator_id=user.pk) | Q(pk__in=mine))
    return pipelines.order_by("name", "id")


def role_rank(pipeline: Pipeline, user: Any) -> int:
    """The user's right on the pipeline as a rank: 0 none, 1 pull, 2 push, 3 admin."""
    role = pipeline.role_of(user)
    return PipelinePermission.rank(role) if role else 0


def inherited_secrets(pipeline: Pipeline) -> QuerySet[Secret]:
    """A child pipeline's parent's secrets of names the child has none of: what its builds
    inherit (builds/secrets.py); none for a pipeline without a parent."""
    if not pipeline.config_pipeline_id:
        return Secret.objects.none()
    own = Secret.objects.filter(pipeline_id=pipeline.pk).values("name")
    return Secret.objects.filter(pipeline_id=pipeline.config_pipeline_id).exclude(name__in=own)


def listed_secrets(pipeline: Pipeline) -> QuerySet[Secret]:
    """The pipeline's own secrets and those it inherits, as Screwdriver's pipeline `secrets`
    lists them (each keeps its own pipelineId: an inherited one names the parent)."""
    own = Q(pipeline_id=pipeline.pk)
    if not pipeline.config_pipeline_id:
        return Secret.objects.filter(own)
    return Secret.objects.filter(own | Q(pk__in=inherited_secrets(pipeline).values("pk")))


def overridden_secret_names(pipeline: Pipeline) -> set[str]:
    """The names of a child pipeline's own secrets that take the place of its parent's."""
    if not pipeline.config_pipeline_id:
        return set()
    own = Secret.objects.filter(pipeline_id=pipeline.pk).values("name")
    parents = Secret.objects.filter(pipeline_id=pipeline.config_pipeline_id, name__in=own)
    return set(parents.values_list("name", flat=True))
