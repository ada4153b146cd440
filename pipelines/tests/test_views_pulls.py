"""The Pull Requests tab and one pull request's page: open pull requests with their jobs'
latest builds, test results and summaries; closed ones on request; who may read them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from builds.models import Build, BuildStatus
from pipelines.models import Event, Job, Pipeline, PipelinePermission
from pipelines.tests.factories import ESCAPED, XSS, make_pipeline

pytestmark = pytest.mark.django_db

T0 = timezone.now() - timedelta(hours=1)


def pr_event(
    pipeline: Pipeline,
    number: int,
    jobs: list[str],
    *,
    title: str = "Raise the coverage",
    author: str = "octocat",
    url: str | None = None,
    meta: dict[str, Any] | None = None,
    status: str = BuildStatus.SUCCESS,
) -> Event:
    """A pull request event whose PR-<number>:<job> builds ended."""
    event = Event.objects.create(
        pipeline=pipeline,
        type=Event.Type.PR,
        pr_num=number,
        pr={
            "title": title,
            "username": author,
            "url": url or f"https://github.com/o/r/pull/{number}",
        },
        sha=f"{number:040d}",
        start_from="~pr",
        creator={"username": author},
        status=Event.Status.SUCCESS,
    )
    for name in jobs:
        job, _ = Job.objects.update_or_create(
            pipeline=pipeline, name=f"PR-{number}:{name}", defaults={"archived": False}
        )
        Build.objects.create(
            job=job,
            event=event,
            number=event.pk * 100 + job.pk,
            sha=event.sha,
            status=status,
            start_time=T0,
            end_time=T0 + timedelta(seconds=83),
            meta=meta or {},
        )
    return event


def close(pipeline: Pipeline, number: int) -> None:
    Job.objects.filter(pipeline=pipeline, name__startswith=f"PR-{number}:").update(archived=True)


def page(client: Client, name: str, *args: int, **query: str) -> str:
    response = client.get(reverse(name, args=list(args)), query)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


REPORTED = {
    "tests": {"coverage": 81, "results": "10/12", "coverageUrl": "/coverage/index.html"},
    "summary": "All <b>green</b>",
    "meta": {"summary": {"lines": "1,234"}},
}


def test_the_tab_lists_open_pull_requests_with_their_jobs_latest_builds(
    member_client: Client,
) -> None:
    pipeline = make_pipeline(jobs=1, events=1)
    old = pr_event(pipeline, 7, ["test", "lint"], status=BuildStatus.FAILURE)
    new = pr_event(pipeline, 7, ["test"], meta=REPORTED)
    pr_event(pipeline, 9, ["test"], title="Second", author="hubot")

    html = page(member_client, "pipelines:pulls", pipeline.pk)

    assert reverse("pipelines:pulls", args=[pipeline.pk]) == f"/pipelines/{pipeline.pk}/pulls"
    assert html.index('id="pull-9"') < html.index('id="pull-7"')
    assert "Raise the coverage" in html and "by octocat" in html and "by hubot" in html
    assert 'href="https://github.com/o/r/pull/7"' in html
    assert f'href="{reverse("pipelines:pull", args=[pipeline.pk, 7])}"' in html
    test_build = Build.objects.get(event=new)
    lint_build = Build.objects.get(event=old, job__name="PR-7:lint")
    stale = Build.objects.get(event=old, job__name="PR-7:test")
    # Each job's latest build: test's from the new event, lint's from the only one it ran in.
    assert f'/builds/{test_build.pk}"' in html and f'/builds/{lint_build.pk}"' in html
    assert f'/builds/{stale.pk}"' not in html
    assert "1m 23s" in html
    assert (
        f'datetime="{T0.isoformat(timespec="seconds")}' in html or T0.strftime("%Y-%m-%d") in html
    )
    # Tests as the build page shows them, and the summary comment's lines, escaped.
    assert f'<a href="/v4/builds/{test_build.pk}/artifacts/coverage/index.html">81%</a>' in html
    assert "10/12" in html
    assert "<p>All &lt;b&gt;green&lt;/b&gt;</p>" in html and "<p>__lines__ - 1,234</p>" in html
    assert "Pull Requests</a>" in page(member_client, "pipelines:detail", pipeline.pk)


def test_the_build_page_and_the_pull_request_page_show_test_results_alike(
    member_client: Client,
) -> None:
    pipeline = make_pipeline(jobs=1, events=0)
    build = Build.objects.get(event=pr_event(pipeline, 4, ["test"], meta=REPORTED))
    build_page = page(member_client, "builds:detail", pipeline.pk, build.pk)
    start = build_page.index('<dl class="facts">', build_page.index('id="test-results"'))
    fragment = build_page[start : build_page.index("</dl>", start) + 5]

    assert "81%" in fragment and "10/12" in fragment
    assert fragment in page(member_client, "pipelines:pulls", pipeline.pk)
    assert fragment in page(member_client, "pipelines:pull", pipeline.pk, 4)


def test_titles_authors_and_summaries_are_escaped_and_only_web_links_are_followed(
    member_client: Client,
) -> None:
    pipeline = make_pipeline(jobs=1, events=0)
    pr_event(
        pipeline,
        5,
        ["test"],
        title=XSS,
        author=XSS,
        url="javascript:alert(1)",
        meta={"summary": XSS, "tests": {"coverage": XSS}},
    )

    for html in (
        page(member_client, "pipelines:pulls", pipeline.pk),
        page(member_client, "pipelines:pull", pipeline.pk, 5),
    ):
        assert XSS not in html
        assert html.count(ESCAPED) >= 3
        assert "javascript:" not in html


def test_closed_pull_requests_are_hidden_until_asked_for_then_marked(
    member_client: Client,
) -> None:
    pipeline = make_pipeline(jobs=1, events=0)
    pr_event(pipeline, 3, ["test"], title="Merged long ago")
    pr_event(pipeline, 8, ["test"], title="Still open")
    close(pipeline, 3)

    shown = page(member_client, "pipelines:pulls", pipeline.pk)
    assert "Still open" in shown and "Merged long ago" not in shown
    everything = page(member_client, "pipelines:pulls", pipeline.pk, state="all")
    assert "Merged long ago" in everything
    closed = everything[everything.index('id="pull-3"') :]
    assert 'class="card pull pull-closed"' in everything
    assert '<span class="badge status-closed">closed</span>' in closed
    assert (
        "status-closed"
        not in everything[everything.index('id="pull-8"') : everything.index('id="pull-3"')]
    )
    one = page(member_client, "pipelines:pull", pipeline.pk, 3)
    assert "Merged long ago" in one and "status-closed" in one


def test_a_pull_requests_page_lists_its_own_events_only(member_client: Client) -> None:
    pipeline = make_pipeline(jobs=1, events=1)
    mine = [pr_event(pipeline, 6, ["test"]), pr_event(pipeline, 6, ["test"])]
    other = pr_event(pipeline, 2, ["test"])
    branch_event = Event.objects.filter(pipeline=pipeline, type=Event.Type.PIPELINE).get()

    html = page(member_client, "pipelines:pull", pipeline.pk, 6)

    for event in mine:
        assert f'id="event-{event.pk}"' in html
    assert f'id="event-{other.pk}"' not in html and f'id="event-{branch_event.pk}"' not in html
    assert member_client.get(reverse("pipelines:pull", args=[pipeline.pk, 99])).status_code == 404
    assert "No open pull request" in page(
        member_client, "pipelines:pulls", make_pipeline(events=0, name="o/other").pk
    )


def test_the_tabs_query_count_does_not_depend_on_pull_requests_jobs_or_builds(
    member_client: Client, django_assert_max_num_queries: Any
) -> None:
    small = make_pipeline(jobs=1, events=0, name="s/small")
    pr_event(small, 1, ["test"], meta=REPORTED)
    big = make_pipeline(jobs=1, events=0, name="b/big")
    for number in range(1, 13):
        for _ in range(2):
            pr_event(big, number, ["test", "lint", "docs"], meta=REPORTED)
    for number in range(1, 13, 3):
        close(big, number)

    for query in ({}, {"state": "all"}):
        url = reverse("pipelines:pulls", args=[small.pk])
        with django_assert_max_num_queries(40) as few:
            assert member_client.get(url, query).status_code == 200
        with django_assert_max_num_queries(len(few.captured_queries)):
            response = member_client.get(reverse("pipelines:pulls", args=[big.pk]), query)
        assert response.status_code == 200
        assert response.content.decode().count('class="table pull-builds"') == (12 if query else 8)
    with django_assert_max_num_queries(len(few.captured_queries) + 2) as one:
        assert member_client.get(reverse("pipelines:pull", args=[small.pk, 1])).status_code == 200
    with django_assert_max_num_queries(len(one.captured_queries)):
        assert member_client.get(reverse("pipelines:pull", args=[big.pk, 12])).status_code == 200


def test_outsiders_and_anonymous_people_see_no_pull_request(
    member_client: Client, admin_client: Client
) -> None:
    secret = make_pipeline(jobs=1, events=0, name="secret/repo")
    Pipeline.objects.filter(pk=secret.pk).update(scm_repo={"branch": "main", "private": True})
    pr_event(secret, 1, ["test"], title="Hidden work")
    urls = [
        reverse("pipelines:pulls", args=[secret.pk]),
        reverse("pipelines:pull", args=[secret.pk, 1]),
    ]

    for url in urls:
        assert member_client.get(url).status_code == 404
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
        assert "Hidden work" in admin_client.get(url).content.decode()
    PipelinePermission.objects.create(
        pipeline=secret, user=User.objects.get(username="bob"), role="pull"
    )
    assert "Hidden work" in member_client.get(urls[0]).content.decode()
