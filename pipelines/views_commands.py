"""Pages of the commands that builds publish for `sd-cmd`: the list, and one command's versions."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from pipelines.command_selectors import (
    command_summaries,
    command_tags,
    command_versions,
    sorted_command_versions,
)


@login_required
@require_GET
def command_list(request: HttpRequest) -> HttpResponse:
    """Every command once, with its newest version."""
    return render(request, "pipelines/commands.html", {"summaries": command_summaries()})


@login_required
@require_GET
def command_detail(request: HttpRequest, namespace: str, name: str) -> HttpResponse:
    """One command: its versions, formats and tags."""
    versions = sorted_command_versions(
        list(command_versions(namespace, name).select_related("pipeline"))
    )
    if not versions:
        raise Http404(f"There is no command {namespace}/{name}.")
    context = {
        "command": next((v for v in versions if v.latest), versions[0]),
        "versions": versions,
        "tags": list(command_tags(namespace, name)),
    }
    return render(request, "pipelines/command_detail.html", context)
