"""A pipeline of 200 jobs and 10,000 builds costs the pages no more queries than a small one."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from builds.models import Build, BuildStatus, StageBuild
from pipelines.models import Event, Job, Pipeline, PipelinePermission, Stage

# Pages over 10,000 builds: `make test` runs them, the quick unit part does not.
pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def bulk_pipeline(name: str, *, jobs: int, events: int) -> Pipeline:
    """A chain of `jobs` jobs after ~commit, each built once in each of `events` events."""
    names = [f"job{i:03d}" for i in range(jobs)]
    graph = {
        "nodes": [{"name": "~commit"}] + [{"name": n} for n in names],
        "edges": [{"src": "~commit", "dest": names[0]}]
        + [{"src": names[i - 1], "dest": names[i], "join": True} for i in range(1, jobs)],
    }
    pipeline = Pipeline.objects.create(
        name=name,
        scm_uri=f"local:/{name}:main",
        checkout_url=f"/srv/{name}.git#main",
        scm_repo={"name": name, "branch": "main", "private": False},
        workflow_graph=graph,
    )
    job_rows = Job.objects.bulk_create(Job(pipeline=pipeline, name=n) for n in names)
    event_rows = Event.objects.bulk_create(
        Event(
            pipeline=pipeline,
            sha=f"{e:040x}",
            start_from="~commit",
            commit={"message": f"commit {e}", "author": {"name": "Alice"}},
            workflow_graph=graph,
            status=Event.Status.SUCCESS,
        )
        for e in range(events)
    )
    Build.objects.bulk_create(
        (
            Build(
                job=job, event=event, number=e * 1000 + j, sha=event.sha, status=BuildStatus.SUCCESS
            )
            for e, event in enumerate(event_rows)
            for j, job in enumerate(job_rows)
        ),
        batch_size=2000,
    )
    Pipeline.objects.filter(pk=pipeline.pk).update(last_event=event_rows[-1])
    return pipeline


@pytest.fixture
def alice_client(client: Client) -> Client:
    client.force_login(User.objects.create_user("alice"))
    return client


def test_the_pipeline_and_jobs_pages_query_count_does_not_depend_on_jobs_or_builds(
    alice_client: Client, django_assert_max_num_queries: Any
) -> None:
    small = bulk_pipeline("s/small", jobs=2, events=2)
    big = bulk_pipeline("b/big", jobs=200, events=50)
    assert Build.objects.filter(job__pipeline=big).count() == 10_000
    alice = User.objects.get(username="alice")
    for pipeline in (small, big):
        PipelinePermission.objects.create(pipeline=pipeline, user=alice, role="admin")
    for name in ("pipelines:detail", "pipelines:jobs"):
        with django_assert_max_num_queries(50) as few:
            assert alice_client.get(reverse(name, args=[small.pk])).status_code == 200
        with django_assert_max_num_queries(len(few.captured_queries)):
            response = alice_client.get(reverse(name, args=[big.pk]))
        assert response.status_code == 200
        page = response.content.decode()
        assert "job199" in page
    # The big page draws every job of the selected event and links each to its build.
    detail = alice_client.get(reverse("pipelines:detail", args=[big.pk])).content.decode()
    assert detail.count('class="node-link"') == 200
    assert "200 success" in detail


def add_matrix_stages_and_remotes(pipeline: Pipeline, *, permutations: int) -> None:
    """Give the latest event's jobs extra permutations, a stage each and a remote trigger each."""
    event = Event.objects.filter(pipeline=pipeline).order_by("-id").first()
    assert event is not None
    jobs = list(Job.objects.filter(pipeline=pipeline).order_by("id"))
    Build.objects.bulk_create(
        Build(
            job=job,
            event=event,
            permutation=p,
            number=10_000_000 + job.pk * 100 + p,
            sha=event.sha,
            status=BuildStatus.FAILURE,
            environment={"NODE": str(p)},
        )
        for job in jobs
        for p in range(1, permutations)
    )
    stages = Stage.objects.bulk_create(Stage(pipeline=pipeline, name=f"s-{j.name}") for j in jobs)
    StageBuild.objects.bulk_create(StageBuild(stage=s, event=event) for s in stages)
    graph = dict(event.workflow_graph)
    graph["nodes"] = [
        {**n, "stageName": f"s-{n['name']}"} if n["name"] != "~commit" else n
        for n in graph["nodes"]
    ] + [{"name": f"~sd@{pipeline.pk}:{j.name}"} for j in jobs]
    graph["edges"] = graph["edges"] + [
        {"src": f"~sd@{pipeline.pk}:{j.name}", "dest": j.name} for j in jobs
    ]
    Event.objects.filter(pk=event.pk).update(
        workflow_graph=graph, parent_build=Build.objects.filter(job=jobs[0]).first()
    )


def test_matrix_marks_stages_and_remote_nodes_keep_the_pipeline_page_query_count_flat(
    alice_client: Client, django_assert_max_num_queries: Any
) -> None:
    small = bulk_pipeline("s/small", jobs=2, events=2)
    big = bulk_pipeline("b/big", jobs=200, events=5)
    add_matrix_stages_and_remotes(small, permutations=2)
    add_matrix_stages_and_remotes(big, permutations=4)
    alice = User.objects.get(username="alice")
    for pipeline in (small, big):
        PipelinePermission.objects.create(pipeline=pipeline, user=alice, role="admin")
    with django_assert_max_num_queries(50) as few:
        assert alice_client.get(reverse("pipelines:detail", args=[small.pk])).status_code == 200
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = alice_client.get(reverse("pipelines:detail", args=[big.pk]))
    page = response.content.decode()
    assert page.count('class="mark-link"') == 200 * 4
    assert page.count('class="stage-builds"') == 1 and "<strong>s-job199</strong>" in page
    assert page.count(f'href="/pipelines/{big.pk}"') >= 200
