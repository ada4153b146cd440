"""Build page of the UI: status, steps with live logs, artifacts, Restart and Stop; and the
job permalinks to a job's latest build and its artifacts, as Screwdriver's UI has them."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from builds import selectors, whole_log
from builds.artifact_links import sign_view_token
from builds.artifact_reads import TEXT_PREVIEW_BYTES, kind_of
from builds.artifacts import artifact_at
from builds.models import Artifact, Build, BuildStatus
from builds.services import TransitionError, abort_build
from pipelines.config.annotations import starts_by_hand
from pipelines.models import Pipeline
from pipelines.selectors import branch_of, duration_text, first_line, siblings_of
from pipelines.views import ADMIN, PUSH, pipeline_with_rank, signed_in_user
from screwdriver_site.tokens import generation_of


def _build_context(pipeline: Pipeline, rank: int, build: Build) -> dict[str, Any]:
    """What both tabs of the build page show: the banner and the tabs."""
    return {
        "build": build,
        "pipeline": pipeline,
        "branch": build.event.base_branch or branch_of(pipeline),
        "commit_message": first_line(str((build.event.commit or {}).get("message", ""))),
        "permutations": siblings_of(build),
        "duration": duration_text(build.start_time, build.end_time),
        "can_push": rank >= PUSH,
        "is_admin": rank >= ADMIN,
        "starts_by_hand": starts_by_hand(build.job_config()),
    }


def _view_base(request: HttpRequest, build: Build) -> str:
    """The signed-in person's capability address of the build's artifacts, to append a quoted
    path to: a report framed from it loads the files beside it (builds.artifact_links)."""
    viewer = signed_in_user(request)
    token = sign_view_token(
        build_id=build.pk, viewer_id=viewer.pk, generation=generation_of(viewer)
    )
    return reverse("api:build-artifact-view-index", args=[build.pk, token])


@login_required
def build_detail(request: HttpRequest, pipeline_id: int, build_id: int) -> HttpResponse:
    """One build of a pipeline: its status banner and its steps; build.js streams the logs."""
    pipeline, rank = pipeline_with_rank(request, pipeline_id)
    build = selectors.build_of_pipeline(pipeline_id=pipeline.pk, build_id=build_id)
    context = {
        **_build_context(pipeline, rank, build),
        "tab": "steps",
        "steps": selectors.step_rows(build),
        "artifact_count": Artifact.objects.filter(build=build).count(),
    }
    return render(request, "builds/detail.html", context)


@login_required
@require_GET
def build_artifacts(
    request: HttpRequest, pipeline_id: int, build_id: int, artifact_path: str = ""
) -> HttpResponse:
    """The build page's Artifacts tab: the tree of its files, and the one the address names."""
    pipeline, rank = pipeline_with_rank(request, pipeline_id)
    build = selectors.build_of_pipeline(pipeline_id=pipeline.pk, build_id=build_id)
    page = selectors.artifacts_page(build, artifact_path)
    shows_report = page.file is not None and page.file.kind == "html"
    context = {
        **_build_context(pipeline, rank, build),
        "tab": "artifacts",
        "artifacts": page,
        "artifact_count": page.count,
        "zip_url": reverse("api:build-artifacts", args=[build.pk]),
        "text_limit": TEXT_PREVIEW_BYTES,
        # Quoted paths are appended to these.
        "page_base": reverse("builds:artifacts", args=[pipeline.pk, build.pk]) + "/",
        "api_base": reverse("api:build-artifacts", args=[build.pk]) + "/",
        # Made only when a report is shown: it is the one that loads files beside it.
        "view_base": _view_base(request, build) if shows_report else "",
    }
    return render(request, "builds/detail.html", context, status=404 if page.missing else 200)


@login_required
@require_GET
def build_log(request: HttpRequest, pipeline_id: int, build_id: int) -> StreamingHttpResponse:
    """The build's whole log as one text file, for whoever may read the build page."""
    pipeline, _ = pipeline_with_rank(request, pipeline_id)
    return whole_log.download(
        selectors.build_of_pipeline(pipeline_id=pipeline.pk, build_id=build_id)
    )


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


def _latest_build(
    request: HttpRequest, pipeline_id: int, job_name: str, default_status: str | None
) -> Build | HttpResponse:
    """The job's latest build of the status `?status=` names, or the page that says why not."""
    pipeline, _ = pipeline_with_rank(request, pipeline_id)
    raw = request.GET.get("status", "").strip().upper()
    if raw and raw not in BuildStatus.values:
        message = f"There is no build status {raw!r}: use one of {', '.join(BuildStatus.values)}."
        return _no_build(request, pipeline, message, status=400)
    status = raw or default_status
    build = selectors.latest_build_of_job(pipeline_id=pipeline.pk, job_name=job_name, status=status)
    if build is None:
        which = f"{status} build" if status else "build"
        return _no_build(request, pipeline, f"Job {job_name} has no {which} yet.", status=404)
    return build


def _no_build(request: HttpRequest, pipeline: Pipeline, message: str, status: int) -> HttpResponse:
    context = {"pipeline": pipeline, "message": message}
    return render(request, "builds/no_build.html", context, status=status)


@login_required
@require_GET
def job_latest(request: HttpRequest, pipeline_id: int, job_name: str) -> HttpResponse:
    """The page of the job's latest build (of `?status=`, any status by default)."""
    build = _latest_build(request, pipeline_id, job_name, None)
    if isinstance(build, HttpResponse):
        return build
    return redirect("builds:detail", pipeline_id=pipeline_id, build_id=build.pk)


@login_required
@require_GET
def job_artifact(
    request: HttpRequest, pipeline_id: int, job_name: str, artifact_path: str = ""
) -> HttpResponse:
    """An artifact of the job's latest SUCCESS build (or of `?status=`): its place on the build
    page, or with `?type=download|preview` the file itself."""
    build = _latest_build(request, pipeline_id, job_name, BuildStatus.SUCCESS)
    if isinstance(build, HttpResponse):
        return build
    as_type = request.GET.get("type")
    if artifact_path and as_type == "preview":
        artifact = artifact_at(build, artifact_path)
        if artifact is not None and kind_of(artifact.path, artifact.content_type) == "html":
            # A report, at an address under which the files beside it load too.
            return redirect(_view_base(request, build) + quote(artifact.path))
    if artifact_path and as_type in ("download", "preview"):
        address = reverse("api:build-artifact", args=[build.pk, artifact_path])
        return redirect(f"{address}?type={as_type}")
    if artifact_path:
        return redirect("builds:artifact", pipeline_id, build.pk, artifact_path)
    return redirect("builds:artifacts", pipeline_id, build.pk)
