"""The metrics page: charts of run and queue times, escaped, failures marked, rights kept."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from builds.models import Build, BuildStatus
from pipelines.charts import Bar, bar_chart
from pipelines.models import Job, Pipeline
from pipelines.tests.factories import ESCAPED, XSS, make_pipeline

pytestmark = pytest.mark.django_db


@pytest.fixture
def pipeline(owner: User) -> Pipeline:
    pipeline = make_pipeline(jobs=2, events=3)
    Job.objects.filter(pipeline=pipeline, name="job1").update(name=XSS)
    now = timezone.now()
    for n, build in enumerate(Build.objects.filter(job__pipeline=pipeline).order_by("id")):
        Build.objects.filter(pk=build.pk).update(
            start_time=now - timedelta(seconds=60 + n), end_time=now
        )
    last = Build.objects.filter(job__pipeline=pipeline).order_by("-id").first()
    assert last is not None
    Build.objects.filter(pk=last.pk).update(status=BuildStatus.FAILURE)
    return pipeline


def test_the_pipeline_chart_draws_a_bar_per_event_and_marks_the_failed_one(
    pipeline: Pipeline, admin_client: Client
) -> None:
    page = admin_client.get(f"/pipelines/{pipeline.pk}/metrics").content.decode()
    assert page.count('class="chart-run"') == 2 + 1  # two green events and the legend
    assert page.count('class="chart-failed"') == 1 + 1
    assert "Event " in page and "FAILURE" in page
    # Every job is offered, its name escaped.
    assert ESCAPED in page and XSS not in page


def test_the_job_chart_escapes_the_job_name_and_links_each_build(
    pipeline: Pipeline, admin_client: Client
) -> None:
    job = Job.objects.get(pipeline=pipeline, name=XSS)
    page = admin_client.get(f"/pipelines/{pipeline.pk}/metrics?jobId={job.pk}").content.decode()
    assert XSS not in page
    assert f"Latest builds of {ESCAPED}" in page
    for build in Build.objects.filter(job=job):
        assert f'href="/pipelines/{pipeline.pk}/builds/{build.pk}"' in page


def test_a_job_of_another_pipeline_is_not_found_and_a_private_pipeline_is_refused(
    pipeline: Pipeline, admin_client: Client, member_client: Client
) -> None:
    other = make_pipeline(jobs=1, events=0, name="other/repo")
    job = Job.objects.get(pipeline=other)
    assert admin_client.get(f"/pipelines/{pipeline.pk}/metrics?jobId={job.pk}").status_code == 404
    Pipeline.objects.filter(pk=pipeline.pk).update(scm_repo={"private": True})
    assert member_client.get(f"/pipelines/{pipeline.pk}/metrics").status_code in (403, 404)


def test_a_chart_escapes_every_text_and_scales_its_axis() -> None:
    svg = str(bar_chart([Bar(XSS, 90, 30, True, XSS, href="/x?a=1&b=2")], title=XSS))
    assert XSS not in svg and ESCAPED in svg
    assert 'href="/x?a=1&amp;b=2"' in svg
    assert ">2m<" in svg  # the axis tops at a round 2 minutes over the 120 s bar
    assert "✕" in svg


def test_the_page_query_count_does_not_grow_with_events(
    pipeline: Pipeline, admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(30) as few:
        admin_client.get(f"/pipelines/{pipeline.pk}/metrics")
    bigger = make_pipeline(jobs=3, events=20, name="big/repo")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert admin_client.get(f"/pipelines/{bigger.pk}/metrics").status_code == 200
