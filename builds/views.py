"""Build page of the UI: status, steps with live logs, Restart and Stop."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from builds import selectors
from builds.services import TransitionError, abort_build
from pipelines.selectors import branch_of, duration_text, first_line, siblings_of
from pipelines.views import ADMIN, PUSH, pipeline_with_rank


@login_required
def build_detail(request: HttpRequest, pipeline_id: int, build_id: int) -> HttpResponse:
    """One build of a pipeline: its status banner and its steps; build.js streams the logs."""
    pipeline, rank = pipeline_with_rank(request, pipeline_id)
    build = selectors.build_of_pipeline(pipeline_id=pipeline.pk, build_id=build_id)
    context = {
        "build": build,
        "pipeline": pipeline,
        "branch": build.event.base_branch or branch_of(pipeline),
        "commit_message": first_line(str((build.event.commit or {}).get("message", ""))),
        "steps": selectors.step_rows(build),
        "permutations": siblings_of(build),
        "duration": duration_text(build.start_time, build.end_time),
        "can_push": rank >= PUSH,
        "is_admin": rank >= ADMIN,
    }
    return render(request, "builds/detail.html", context)


@login_required
@require_POST
def build_stop(request: HttpRequest, pipeline_id: int, build_id: int) -> HttpResponseRedirect:
    """Abort a build that has not finished; people with push rights on its pipeline only."""
    pipeline, _ = pipeline_with_rank(request, pipeline_id, PUSH)
    build = selectors.build_of_pipeline(pipeline_id=pipeline.pk, build_id=build_id)
    try:
        abort_build(build_id=build.pk, message=f"Aborted by {request.user.get_username()}")
    except TransitionError:
        messages.error(request, f"Build {build.pk} has already finished: there is nothing to stop.")
    else:
        messages.success(request, f"Build {build.pk} stopped.")
    return redirect("builds:detail", pipeline_id=pipeline_id, build_id=build.pk)
