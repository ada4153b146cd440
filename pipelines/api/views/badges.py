"""Badges at Screwdriver's API paths: the pipeline's, and a job's by name or by id.

As in Screwdriver they need no credentials for a public pipeline (README renderers send none);
a private pipeline's badge is a 404 to whoever may not read it.
"""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request

from pipelines import badges
from pipelines.models import Job, Pipeline
from screwdriver_site.api.base import ApiView
from screwdriver_site.api.permissions import PULL, has_right

SVG = {(200, "image/svg+xml"): OpenApiTypes.STR}


def _readable(request: Request, pipeline: Pipeline) -> Pipeline:
    if pipeline.is_public or (request.user.is_authenticated and has_right(request, pipeline, PULL)):
        return pipeline
    raise Http404("No such pipeline.")


class PipelineBadgeView(ApiView):
    permission_classes = [AllowAny]

    @extend_schema(responses=SVG, auth=[])
    def get(self, request: Request, pipeline_id: int) -> HttpResponse:
        pipeline = _readable(request, get_object_or_404(Pipeline, pk=pipeline_id))
        return badges.pipeline_badge(pipeline)


class JobBadgeView(ApiView):
    permission_classes = [AllowAny]

    @extend_schema(operation_id="pipelines_job_badge_retrieve", responses=SVG, auth=[])
    def get(self, request: Request, pipeline_id: int, job_name: str) -> HttpResponse:
        pipeline = _readable(request, get_object_or_404(Pipeline, pk=pipeline_id))
        return badges.job_badge(get_object_or_404(Job, pipeline=pipeline, name=job_name))


class JobIdBadgeView(ApiView):
    permission_classes = [AllowAny]

    @extend_schema(operation_id="jobs_badge_retrieve", responses=SVG, auth=[])
    def get(self, request: Request, job_id: int) -> HttpResponse:
        job = get_object_or_404(Job.objects.select_related("pipeline"), pk=job_id)
        _readable(request, job.pipeline)
        return badges.job_badge(job)
