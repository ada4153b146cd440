"""Pages of the job and pipeline templates that builds publish: the lists, and one template's
versions."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from pipelines.config.job_template import version_key
from pipelines.models import Pipeline, PipelineTemplate
from pipelines.services import set_pipeline_template_trusted
from pipelines.template_selectors import (
    pipeline_template_summaries,
    pipelines_using,
    pipelines_using_pipeline_template,
    sorted_versions,
    tags_of,
    template_summaries,
    trusts,
    versions_of,
)


@login_required
@require_GET
def template_list(request: HttpRequest) -> HttpResponse:
    """Every template once, with its newest version."""
    return render(request, "pipelines/templates.html", {"summaries": template_summaries()})


@login_required
@require_GET
def template_detail(request: HttpRequest, namespace: str, name: str) -> HttpResponse:
    """One template: its versions, its tags and the pipelines (that you can see) using it."""
    versions = sorted_versions(list(versions_of(namespace, name).select_related("pipeline")))
    if not versions:
        raise Http404(f"There is no template {namespace}/{name}.")
    readable = (
        Pipeline.objects.all()
        if request.user.is_superuser
        else Pipeline.objects.readable_by(request.user)
    )
    context = {
        # What the page describes: the latest version, as Screwdriver's template page does.
        "template": next((v for v in versions if v.latest), versions[0]),
        "versions": versions,
        "tags": list(tags_of(namespace, name)),
        "users": pipelines_using([v.pk for v in versions], readable),
    }
    return render(request, "pipelines/template_detail.html", context)


@login_required
@require_GET
def pipeline_template_list(request: HttpRequest) -> HttpResponse:
    """Every pipeline template with its latest version and whether it is trusted."""
    context = {"templates": list(pipeline_template_summaries())}
    return render(request, "pipelines/pipeline_templates.html", context)


def _pipeline_template(namespace: str, name: str) -> PipelineTemplate:
    template = (
        PipelineTemplate.objects.select_related("pipeline")
        .filter(namespace=namespace, name=name)
        .first()
    )
    if template is None:
        raise Http404(f"There is no pipeline template {namespace}/{name}.")
    return template


@login_required
@require_GET
def pipeline_template_detail(request: HttpRequest, namespace: str, name: str) -> HttpResponse:
    """One pipeline template: its versions, tags, trusted mark and the pipelines using it."""
    template = _pipeline_template(namespace, name)
    readable = (
        Pipeline.objects.all()
        if request.user.is_superuser
        else Pipeline.objects.readable_by(request.user)
    )
    rows = sorted(
        template.versions.all(), key=lambda v: (version_key(v.version), v.pk), reverse=True
    )
    versions = [
        {
            "row": version,
            "trusted": trusts(template, version.version),
            "jobs": sorted((version.config or {}).get("jobs") or {}),
        }
        for version in rows
    ]
    context = {
        "template": template,
        "latest": next((v for v in rows if v.version == template.latest_version), None),
        "versions": versions,
        "tags": list(template.tags.order_by("tag")),
        "users": pipelines_using_pipeline_template(template, readable),
    }
    return render(request, "pipelines/pipeline_template_detail.html", context)


@login_required
@require_POST
def pipeline_template_trusted(request: HttpRequest, namespace: str, name: str) -> HttpResponse:
    """A server admin trusts a pipeline template (or no longer does), as the API's PUT."""
    if not request.user.is_superuser:
        raise PermissionDenied("Only a server admin can mark a pipeline template trusted.")
    template = _pipeline_template(namespace, name)
    set_pipeline_template_trusted(
        namespace=template.namespace,
        name=template.name,
        trusted=request.POST.get("trusted") == "true",
    )
    return redirect("pipelines:pipeline-template", namespace=namespace, name=name)
