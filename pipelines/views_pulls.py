"""The pipeline's Pull Requests tab (Screwdriver's UI path `/pipelines/{id}/pulls`) and one
pull request's page: each pull request's jobs, their latest builds, test results and summary."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from pipelines import pull_request_reads, selectors
from pipelines.views import ADMIN, pipeline_with_rank
from screwdriver_site.ids import parse_id


@login_required
@require_GET
def pipeline_pulls(request: HttpRequest, pipeline_id: int) -> HttpResponse:
    """The open pull requests, newest first; `?state=all` lists the closed ones too, marked."""
    pipeline, rank = pipeline_with_rank(request, pipeline_id)
    show_closed = request.GET.get("state") == "all"
    context = {
        "pipeline": pipeline,
        "branch": selectors.branch_of(pipeline),
        "pulls": pull_request_reads.pull_requests(pipeline, closed=show_closed),
        "show_closed": show_closed,
        "max_pulls": pull_request_reads.MAX_PULLS,
        "is_admin": rank >= ADMIN,
        "tab": "pulls",
    }
    return render(request, "pipelines/pulls.html", context)


@login_required
@require_GET
def pipeline_pull(request: HttpRequest, pipeline_id: int, pr_num: int) -> HttpResponse:
    """One pull request, open or closed: its jobs' latest builds and its events."""
    pipeline, rank = pipeline_with_rank(request, pipeline_id)
    rows = pull_request_reads.pull_requests(pipeline, number=pr_num)
    if not rows:
        raise Http404(f"Pipeline {pipeline.pk} has built no pull request {pr_num}.")
    events = selectors.event_rows(
        pipeline, before=parse_id(request.GET.get("before")), pr_num=pr_num
    )
    context = {
        "pipeline": pipeline,
        "branch": selectors.branch_of(pipeline),
        "pull": rows[0],
        "events": events,
        "older": events[-1].event.pk if len(events) == selectors.RECENT_EVENTS else None,
        "is_admin": rank >= ADMIN,
        "tab": "pulls",
    }
    return render(request, "pipelines/pull.html", context)
