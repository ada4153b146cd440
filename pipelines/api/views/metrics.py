"""/v4/pipelines/{id}/metrics, /v4/jobs/{id}/metrics and /v4/events/{id}/metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from builds import metrics
from builds.models import BuildStatus
from screwdriver_site.api.base import (
    MAX_PAGE,
    ApiView,
    choice_param,
    event_for,
    job_for,
    pipeline_for,
)
from screwdriver_site.api.permissions import PEOPLE_AND_PIPELINES, PULL

TIME_PARAMETERS = [
    OpenApiParameter(
        "startTime", OpenApiTypes.DATETIME, description="Builds or events created from then on."
    ),
    OpenApiParameter(
        "endTime", OpenApiTypes.DATETIME, description="Builds or events created until then."
    ),
]
INTERVAL_PARAMETER = OpenApiParameter(
    "aggregateInterval",
    OpenApiTypes.STR,
    enum=list(metrics.INTERVALS),
    description="Average per day, week, month or year instead of one row each.",
)
METRICS_RESPONSE = {200: OpenApiTypes.OBJECT}


def time_param(request: Request, name: str) -> datetime | None:
    """An ISO 8601 date or time; one without a zone is UTC."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError(
            f"{name} must be an ISO 8601 date or time, like 1970-01-01T15:00:00Z."
        ) from None
    try:
        # In UTC, as the database stores it: a moment near year 1 or 9999 with an offset has
        # no UTC time, which the query would fail on.
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError:
        raise ValidationError(f"{name} is out of range: give a year from 1 to 9999.") from None


def time_range(request: Request, default_days: int) -> metrics.TimeRange:
    """Screwdriver's range: up to now and back `default_days` when a bound is missing."""
    end = time_param(request, "endTime") or timezone.now()
    try:
        start = time_param(request, "startTime") or end - timedelta(days=default_days)
    except OverflowError:
        raise ValidationError("endTime is too early: give a startTime too.") from None
    if end < start:
        raise ValidationError("endTime must not be before startTime.")
    if (end - start).days > metrics.MAX_DAYS:
        raise ValidationError(f"Time range is longer than {metrics.MAX_DAYS} days.")
    return metrics.TimeRange(start=start, end=end)


def interval_param(request: Request) -> str:
    return choice_param(request, "aggregateInterval", list(metrics.INTERVALS), "none") or "none"


def list_param(request: Request, name: str) -> list[str]:
    """A repeated parameter, as `name[]=a&name[]=b` (Screwdriver's) or `name=a&name=b`."""
    return request.query_params.getlist(f"{name}[]") + request.query_params.getlist(name)


def positive_param(request: Request, name: str, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= high:
        raise ValidationError(f"{name} must be a whole number from 1 to {high}.")
    return int(raw)


class PipelineMetricsView(ApiView):
    scopes = {"GET": PEOPLE_AND_PIPELINES}

    @extend_schema(
        parameters=[
            *TIME_PARAMETERS,
            INTERVAL_PARAMETER,
            OpenApiParameter("page", OpenApiTypes.INT, description="Page of events, from 1."),
            OpenApiParameter("count", OpenApiTypes.INT, description="Events per page."),
            OpenApiParameter("sort", OpenApiTypes.STR, enum=["ascending", "descending"]),
            OpenApiParameter(
                "downtimeJobs[]", OpenApiTypes.INT, many=True, description="Jobs that count."
            ),
            OpenApiParameter(
                "downtimeStatuses[]",
                OpenApiTypes.STR,
                many=True,
                enum=list(BuildStatus.values),
                description="Build statuses that make an event a downtime (FAILURE).",
            ),
        ],
        responses=METRICS_RESPONSE,
    )
    def get(self, request: Request, pipeline_id: int) -> Response:
        pipeline = pipeline_for(request, pipeline_id, PULL)
        if request.query_params.get("search"):
            raise ValidationError("search is not supported for pipeline metrics.")
        jobs = list_param(request, "downtimeJobs")
        if not all(j.isdigit() and len(j) < 19 for j in jobs):
            raise ValidationError("downtimeJobs[] must be job ids.")
        statuses = list_param(request, "downtimeStatuses")
        unknown = sorted(set(statuses) - set(BuildStatus.values))
        if unknown:
            raise ValidationError(
                f"downtimeStatuses[] must be build statuses, not {', '.join(unknown)}."
            )
        page = positive_param(request, "page", MAX_PAGE)
        count = positive_param(request, "count", metrics.MAX_ROWS)
        sort = choice_param(request, "sort", ["ascending", "descending"], "ascending")
        interval = interval_param(request)
        # Pages of events ignore the time range, as Screwdriver's do; aggregates never page.
        paged = bool(page or count) and interval == "none"
        query = metrics.PipelineQuery(
            time_range=None if paged else time_range(request, 1),
            page=page if paged else None,
            count=count if paged else None,
            ascending=sort == "ascending",
            interval=interval,
            downtime_jobs=[int(j) for j in jobs],
            downtime_statuses=statuses or metrics.DEFAULT_DOWNTIME_STATUSES,
        )
        return Response(metrics.pipeline_metrics(pipeline, query, now=timezone.now()))


class JobMetricsView(ApiView):
    scopes = {"GET": PEOPLE_AND_PIPELINES}

    @extend_schema(parameters=[*TIME_PARAMETERS, INTERVAL_PARAMETER], responses=METRICS_RESPONSE)
    def get(self, request: Request, job_id: int) -> Response:
        job = job_for(request, job_id, PULL)
        span = time_range(request, metrics.MAX_DAYS)
        return Response(metrics.job_metrics(job, span, interval_param(request)))


class EventMetricsView(ApiView):
    scopes = {"GET": PEOPLE_AND_PIPELINES}

    @extend_schema(parameters=TIME_PARAMETERS, responses=METRICS_RESPONSE)
    def get(self, request: Request, event_id: int) -> Response:
        event = event_for(request, event_id, PULL)
        return Response(metrics.event_metrics(event, time_range(request, metrics.MAX_DAYS)))
