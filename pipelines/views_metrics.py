"""The pipeline's metrics page: run and queue times of its recent events, or of one job."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone

from builds import metrics
from builds.models import FAILED_STATUSES
from pipelines import selectors
from pipelines.charts import Bar, bar_chart, duration_text
from pipelines.models import Job
from pipelines.views import pipeline_with_rank
from screwdriver_site.ids import parse_id

# How many of the latest events or builds a chart shows.
RECENT = 40


@login_required
def pipeline_metrics(request: HttpRequest, pipeline_id: int) -> HttpResponse:
    """Charts of the latest events' times, and of one job's builds with ?jobId=."""
    pipeline, _ = pipeline_with_rank(request, pipeline_id)
    jobs = list(Job.objects.filter(pipeline=pipeline, archived=False).order_by("name"))
    job_id = parse_id(request.GET.get("jobId"))
    job = get_object_or_404(Job, pk=job_id, pipeline=pipeline) if job_id else None
    if job is None:
        query = metrics.PipelineQuery(page=1, count=RECENT, ascending=False)
        rows = metrics.pipeline_metrics(pipeline, query, now=timezone.now())[::-1]
        bars = [
            Bar(
                label=str(r["id"]),
                run=r["duration"] or 0,
                queued=r["queuedTime"] or 0,
                failed=r["status"] in FAILED_STATUSES,
                title=f"Event {r['id']}: {r['status']}, ran {duration_text(r['duration'] or 0)}, "
                f"queued {duration_text(r['queuedTime'] or 0)}",
                href=reverse("pipelines:event", args=[pipeline.pk, r["id"]]),
            )
            for r in rows
        ]
        chart = bar_chart(bars, title=f"Latest events of {pipeline.name}")
    else:
        rows = metrics.latest_builds_of_job(job, latest=RECENT)
        bars = [
            Bar(
                label=str(r["id"]),
                run=r["duration"] or 0,
                queued=r["queuedTime"] or 0,
                failed=r["status"] in FAILED_STATUSES,
                title=f"Build {r['id']}: {r['status']}, ran {duration_text(r['duration'] or 0)}, "
                f"queued {duration_text(r['queuedTime'] or 0)}",
                href=reverse("builds:detail", args=[pipeline.pk, r["id"]]),
            )
            for r in rows
        ]
        chart = bar_chart(bars, title=f"Latest builds of {job.name}")
    context = {
        "pipeline": pipeline,
        "branch": selectors.branch_of(pipeline),
        "jobs": jobs,
        "job": job,
        "chart": chart,
        "tab": "metrics",
    }
    return render(request, "pipelines/metrics.html", context)
