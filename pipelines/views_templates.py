"""Pages of the job templates that builds publish: the list, and one template's versions."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from pipelines.models import Pipeline
from pipelines.template_selectors import (
    pipelines_using,
    sorted_versions,
    tags_of,
    template_summaries,
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
