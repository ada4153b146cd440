"""What every /v4 view shares: the scoped base view, paging, and rights-checked lookups."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.views import APIView

from builds.models import Build
from pipelines.models import Event, Job, Pipeline
from screwdriver_site.api.permissions import (
    PEOPLE,
    ScopedAccess,
    kind_of,
    require_own_build,
    require_right,
)

MAX_COUNT = 100
DEFAULT_COUNT = 50
# Offsets past this would overflow some databases' integers; no list is that long.
MAX_PAGE = 1_000_000
# The largest line number a log read accepts (a 32-bit column on every database).
MAX_LINE = 2**31 - 1

PAGING_PARAMETERS = [
    OpenApiParameter("page", OpenApiTypes.INT, description="Page number, from 1."),
    OpenApiParameter("count", OpenApiTypes.INT, description=f"Items per page (1-{MAX_COUNT})."),
    OpenApiParameter("sort", OpenApiTypes.STR, enum=["ascending", "descending"]),
    OpenApiParameter("sortBy", OpenApiTypes.STR, description="Field to sort by."),
]


class ApiView(APIView):
    """A /v4 view: `scopes` maps each HTTP method to the kinds of caller it accepts."""

    permission_classes = [ScopedAccess]
    scopes: dict[str, frozenset[str]] = {"GET": PEOPLE}
    teardown_reporting: frozenset[str] = frozenset()


def int_param(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    """An integer query parameter, clamped to [low, high]; anything else is a 400."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"{name} must be an integer.") from None
    return max(low, min(high, value))


def choice_param(
    request: Request, name: str, choices: list[str], default: str | None
) -> str | None:
    """A query parameter that must be one of `choices`."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        raise ValidationError(f"{name} must be one of {', '.join(choices)}.")
    return raw


def paginate(
    request: Request,
    queryset: QuerySet[Any],
    *,
    sort_by: dict[str, str] | None = None,
    default_sort: str = "descending",
) -> QuerySet[Any]:
    """Screwdriver's paging: `page` (from 1), `count`, `sort` and `sortBy` (a known field)."""
    fields = {"id": "id", **(sort_by or {})}
    page = int_param(request, "page", 1, low=1, high=MAX_PAGE)
    count = int_param(request, "count", DEFAULT_COUNT, low=1, high=MAX_COUNT)
    sort = choice_param(request, "sort", ["ascending", "descending"], default_sort)
    field = fields[choice_param(request, "sortBy", sorted(fields), "id") or "id"]
    prefix = "-" if sort == "descending" else ""
    ordering = [f"{prefix}{field}"] + ([f"{prefix}id"] if field != "id" else [])
    return queryset.order_by(*ordering)[(page - 1) * count : page * count]


def pipeline_for(request: Request, pipeline_id: int, role: str) -> Pipeline:
    pipeline = get_object_or_404(Pipeline, pk=pipeline_id)
    require_right(request, pipeline, role)
    return pipeline


def job_for(request: Request, job_id: int, role: str) -> Job:
    job = get_object_or_404(Job.objects.select_related("pipeline"), pk=job_id)
    require_right(request, job.pipeline, role)
    return job


def event_for(request: Request, event_id: int, role: str) -> Event:
    event = get_object_or_404(Event.objects.select_related("pipeline"), pk=event_id)
    require_right(request, event.pipeline, role)
    return event


def build_for(request: Request, build_id: int, role: str) -> Build:
    """The build, if the caller is its own launcher or holds `role` on its pipeline."""
    require_own_build(request, build_id)
    build = get_object_or_404(Build.objects.select_related("job__pipeline", "event"), pk=build_id)
    if kind_of(request) != "build":
        require_right(request, build.job.pipeline, role)
    return build
