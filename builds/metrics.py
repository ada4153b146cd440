"""Build metrics as Screwdriver's /metrics routes return them: per event, job and pipeline.

Times are seconds. A build's `duration` runs from its start to its end; its `queuedTime` from
`stats.queueEnterTime` to the image pull's start or, where the engine pulls no image, to the
build's start (Screwdriver leaves it empty then); its `imagePullTime` from the pull's start to
the build's start. An event's `duration` runs from its first build's start to its last build's
end. Each read is a fixed number of queries, whatever the number of builds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db.models import Prefetch, QuerySet

from builds.models import Build, BuildStatus, Step
from builds.stats import IMAGE_PULL_START_TIME, QUEUE_ENTER_TIME, iso
from pipelines.models import Event, Job, Pipeline

# Screwdriver's bounds: at most this many days in one read, and this many rows.
MAX_DAYS = 180
MAX_ROWS = 1000
# Aggregates read every event in the range; past this many the oldest are left out.
MAX_AGGREGATED_EVENTS = 20_000
INTERVALS = ("none", "day", "week", "month", "year")
DEFAULT_DOWNTIME_STATUSES = (BuildStatus.FAILURE,)

BUILD_FIELDS = (
    "id",
    "job_id",
    "event_id",
    "created_at",
    "start_time",
    "end_time",
    "status",
    "stats",
    "meta",
    "sha",
)


@dataclass(frozen=True)
class TimeRange:
    """A [start, end] range of creation times."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class PipelineQuery:
    """What `GET /v4/pipelines/{id}/metrics` asks for."""

    time_range: TimeRange | None = None
    page: int | None = None
    count: int | None = None
    ascending: bool = True
    interval: str = "none"
    downtime_jobs: Sequence[int] = ()
    downtime_statuses: Sequence[str] = field(default=DEFAULT_DOWNTIME_STATUSES)


def seconds(start: datetime | None, end: datetime | None) -> int | None:
    """Whole seconds from ``start`` to ``end``, or None when either is unknown."""
    if start is None or end is None:
        return None
    return int((end - start).total_seconds())


def parse_time(text: object) -> datetime | None:
    """A stats time as stored (ISO 8601), or None."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def queued_and_pull(build: Build) -> tuple[int | None, int | None]:
    """The build's seconds in the queue and pulling its image."""
    stats = build.stats or {}
    entered = parse_time(stats.get(QUEUE_ENTER_TIME))
    pull = parse_time(stats.get(IMAGE_PULL_START_TIME))
    return seconds(entered, pull or build.start_time), seconds(pull, build.start_time)


def _time(moment: datetime | None) -> str | None:
    return iso(moment) if moment else None


def build_row(build: Build) -> dict[str, Any]:
    """One build as an event's metrics list it."""
    queued, pull = queued_and_pull(build)
    return {
        "id": build.pk,
        "jobId": build.job_id,
        "eventId": build.event_id,
        "createTime": iso(build.created_at),
        "startTime": _time(build.start_time),
        "endTime": _time(build.end_time),
        "duration": seconds(build.start_time, build.end_time),
        "status": build.status,
        "queuedTime": queued,
        "imagePullTime": pull,
        "meta": build.meta or {},
    }


def _in_range(queryset: QuerySet[Any], time_range: TimeRange | None) -> QuerySet[Any]:
    if time_range is None:
        return queryset
    return queryset.filter(created_at__gte=time_range.start, created_at__lte=time_range.end)


def event_metrics(event: Event, time_range: TimeRange | None = None) -> list[dict[str, Any]]:
    """`GET /v4/events/{id}/metrics`: the event's builds, oldest first (one query)."""
    builds = _in_range(Build.objects.filter(event=event), time_range)
    return [build_row(b) for b in builds.only(*BUILD_FIELDS).order_by("id")]


def step_rows(build: Build) -> list[dict[str, Any]]:
    return [
        {
            "id": s.pk,
            "name": s.name,
            "code": s.code,
            "duration": seconds(s.start_time, s.end_time),
            "createTime": iso(build.created_at),
        }
        for s in build.steps.all()
    ]


def job_metrics(job: Job, time_range: TimeRange, interval: str = "none") -> list[dict[str, Any]]:
    """`GET /v4/jobs/{id}/metrics`: each build (with its steps), or averages per interval."""
    builds_qs = _in_range(Build.objects.filter(job=job), time_range).only(*BUILD_FIELDS)
    if interval == "none":
        steps = Step.objects.only("id", "build_id", "name", "code", "start_time", "end_time")
        builds_qs = builds_qs.prefetch_related(
            Prefetch("steps", queryset=steps.order_by("position", "id"))
        )
    builds = list(builds_qs.order_by("id")[:MAX_ROWS])
    rows = [
        {
            "id": b.pk,
            "jobId": b.job_id,
            "eventId": b.event_id,
            "createTime": iso(b.created_at),
            "sha": b.sha,
            "status": b.status,
            "duration": seconds(b.start_time, b.end_time),
        }
        for b in builds
    ]
    if interval == "none":
        for row, build in zip(rows, builds, strict=True):
            row["steps"] = step_rows(build)
        return rows
    return [
        {"createTime": group[0]["createTime"], "duration": average(r["duration"] for r in group)}
        for group in grouped(rows, interval, key=lambda r: r["createTime"])
    ]


def average(values: Iterable[int | float | None]) -> float | None:
    """The mean of the values that are known and not zero, as Screwdriver counts them."""
    known = [v for v in values if v]
    return round(sum(known) / len(known), 2) if known else None


def period_of(moment: date, interval: str) -> tuple[int, ...]:
    """Which day, week (from Sunday), month or year ``moment`` falls in."""
    if interval == "day":
        return (moment.year, moment.month, moment.day)
    if interval == "week":
        sunday = moment - timedelta(days=(moment.weekday() + 1) % 7)
        return (sunday.year, sunday.month, sunday.day)
    if interval == "month":
        return (moment.year, moment.month)
    return (moment.year,)


def grouped(
    rows: Sequence[dict[str, Any]], interval: str, *, key: Callable[[dict[str, Any]], str]
) -> list[list[dict[str, Any]]]:
    """Consecutive rows of one period together (the rows are in creation order)."""
    groups: list[list[dict[str, Any]]] = []
    last: tuple[int, ...] | None = None
    for row in rows:
        moment = datetime.fromisoformat(key(row)).date()
        period = period_of(moment, interval)
        if period != last:
            groups.append([])
            last = period
        groups[-1].append(row)
    return groups


def summary_of_event(
    builds: Sequence[Build], downtime_jobs: Sequence[int], downtime_statuses: Sequence[str]
) -> dict[str, Any] | None:
    """An event's totals from its builds (None for an event without builds)."""
    if not builds:
        return None
    starts = [b.start_time for b in builds if b.start_time]
    ended = [b for b in builds if b.end_time]
    last = max(ended, key=lambda b: (b.end_time, b.pk)) if ended else None
    queued = pulled = 0
    for build in builds:
        q, p = queued_and_pull(build)
        queued += q or 0
        pulled += p or 0

    def is_down(build: Build) -> bool:
        return (not downtime_jobs or build.job_id in downtime_jobs) and (
            build.status in downtime_statuses
        )

    return {
        "duration": seconds(min(starts), last.end_time) if starts and last else None,
        "queuedTime": queued,
        "imagePullTime": pulled,
        "status": (last or builds[-1]).status,
        "builds": [build_row(b) for b in builds],
        "isDowntimeEvent": any(is_down(b) for b in builds),
        "maxEndTime": _time(last.end_time if last else None),
    }


def _builds_by_event(event_ids: Sequence[int]) -> dict[int, list[Build]]:
    found: dict[int, list[Build]] = {pk: [] for pk in event_ids}
    for build in Build.objects.filter(event_id__in=event_ids).only(*BUILD_FIELDS).order_by("id"):
        found[build.event_id].append(build)
    return found


def pipeline_metrics(
    pipeline: Pipeline, query: PipelineQuery, *, now: datetime
) -> list[dict[str, Any]]:
    """`GET /v4/pipelines/{id}/metrics`: each event's totals, or averages per interval.

    Two queries: the events, then all their builds.
    """
    events_qs = Event.objects.filter(pipeline=pipeline).only(
        "id", "pipeline_id", "created_at", "cause_message", "sha", "commit"
    )
    if query.interval != "none":
        events = list(
            _in_range(events_qs, query.time_range).order_by("-id")[:MAX_AGGREGATED_EVENTS]
        )[::-1]
    elif query.page or query.count:
        count = query.count or 10
        page = query.page or 1
        ordered = events_qs.order_by("id" if query.ascending else "-id")
        events = list(ordered[(page - 1) * count : page * count])
    else:
        ordered = _in_range(events_qs, query.time_range)
        events = list(ordered.order_by("id" if query.ascending else "-id")[:MAX_ROWS])
    builds = _builds_by_event([e.pk for e in events])
    statuses = query.downtime_statuses
    summaries = [
        (event, summary_of_event(builds[event.pk], query.downtime_jobs, statuses))
        for event in events
    ]
    if query.interval != "none":
        return _aggregate(summaries, query.interval)
    rows = [
        {
            "id": event.pk,
            "createTime": iso(event.created_at),
            "causeMessage": event.cause_message,
            "sha": event.sha,
            "commit": event.commit or {},
            **summary,
        }
        for event, summary in summaries
        if summary is not None
    ]
    _add_downtime(rows, now)
    return rows


def _add_downtime(rows: list[dict[str, Any]], now: datetime) -> None:
    # A downtime lasts from one downtime event's last end to the next one's, and the latest
    # one's until now: Screwdriver's measure of how long the pipeline was red.
    down = [r for r in rows if r["isDowntimeEvent"] and r["maxEndTime"]]
    for current, following in zip(down, [*down[1:], None], strict=False):
        end = parse_time(following["maxEndTime"]) if following else now
        current["downtimeDuration"] = seconds(parse_time(current["maxEndTime"]), end)


def _aggregate(
    summaries: Sequence[tuple[Event, dict[str, Any] | None]], interval: str
) -> list[dict[str, Any]]:
    rows = [
        {"createTime": iso(event.created_at), **(summary or {})} for event, summary in summaries
    ]
    return [
        {
            "createTime": group[0]["createTime"],
            "duration": average(r.get("duration") for r in group),
            "queuedTime": average(r.get("queuedTime") for r in group),
            "imagePullTime": average(r.get("imagePullTime") for r in group),
        }
        for group in grouped(rows, interval, key=lambda r: r["createTime"])
    ]


def latest_builds_of_job(job: Job, *, latest: int) -> list[dict[str, Any]]:
    """The job's last ``latest`` finished builds as events' metrics list them, oldest first."""
    builds = (
        Build.objects.filter(job=job, end_time__isnull=False).only(*BUILD_FIELDS).order_by("-id")
    )
    return [build_row(b) for b in reversed(builds[:latest])]
