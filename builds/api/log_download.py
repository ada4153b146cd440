"""GET /v4/builds/{id}/logs: the build's whole log, every step in order, as one download."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request

from builds import whole_log
from screwdriver_site.api.base import ApiView, build_for
from screwdriver_site.api.permissions import PULL, READERS


class BuildLogView(ApiView):
    """Screwdriver has only per-step logs; this serves them all in one text file."""

    scopes = {"GET": READERS}

    @extend_schema(
        operation_id="builds_logs_download",
        responses={(200, "text/plain"): OpenApiTypes.STR},
    )
    def get(self, request: Request, build_id: int) -> StreamingHttpResponse:
        return whole_log.download(build_for(request, build_id, PULL))
