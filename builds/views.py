"""Build page of the UI: status, steps with live logs, and the Stop button."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from builds import selectors
from builds.services import TransitionError, abort_build
from pipelines.selectors import duration_text


@login_required
def build_detail(request: HttpRequest, pipeline_id: int, build_id: int) -> HttpResponse:
    """One build of a pipeline: its status banner and its steps; build.js streams the logs."""
    build = selectors.build_of_pipeline(pipeline_id=pipeline_id, build_id=build_id)
    pipeline = build.job.pipeline
    context = {
        "build": build,
        "pipeline": pipeline,
        "steps": selectors.step_rows(build),
        "duration": duration_text(build.start_time, build.end_time),
        "is_admin": pipeline.is_admin(request.user),
    }
    return render(request, "builds/detail.html", context)


@login_required
@require_POST
def build_stop(request: HttpRequest, pipeline_id: int, build_id: int) -> HttpResponseRedirect:
    """Abort a build that has not finished; admins of its pipeline only."""
    build = selectors.build_of_pipeline(pipeline_id=pipeline_id, build_id=build_id)
    if not build.job.pipeline.is_admin(request.user):
        raise PermissionDenied("Only admins of this pipeline can stop its builds.")
    try:
        abort_build(build_id=build.pk, message=f"Aborted by {request.user.get_username()}")
    except TransitionError:
        messages.error(request, f"Build {build.pk} has already finished: there is nothing to stop.")
    else:
        messages.success(request, f"Build {build.pk} stopped.")
    return redirect("builds:detail", pipeline_id=pipeline_id, build_id=build.pk)
