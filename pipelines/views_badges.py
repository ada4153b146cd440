"""Badges at Screwdriver's UI paths, for READMEs: `/pipelines/{id}/badge` and a job's."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from pipelines import badges, selectors
from pipelines.models import Job, Pipeline, PipelinePermission


def _readable(request: HttpRequest, pipeline_id: int) -> Pipeline:
    # No sign-in page: an image request cannot follow one. Unreadable means absent.
    pipeline = selectors.pipeline_of(pipeline_id)
    if pipeline.is_public or pipeline.has_right(request.user, PipelinePermission.Role.PULL):
        return pipeline
    raise Http404("No such pipeline.")


def pipeline_badge(request: HttpRequest, pipeline_id: int) -> HttpResponse:
    """The pipeline's latest event status as an SVG badge."""
    return badges.pipeline_badge(_readable(request, pipeline_id))


def job_badge(request: HttpRequest, pipeline_id: int, job_name: str) -> HttpResponse:
    """A job's latest build status as an SVG badge."""
    pipeline = _readable(request, pipeline_id)
    job = get_object_or_404(
        Job.objects.select_related("pipeline"), pipeline=pipeline, name=job_name
    )
    return badges.job_badge(job)
