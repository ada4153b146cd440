"""Rows for the pipelines tests, written straight to the database: no git, no services."""

from __future__ import annotations

from django.contrib.auth.models import User

from builds.models import Build, BuildStatus, Step
from pipelines.models import Event, Job, Pipeline, PipelinePermission

XSS = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


def make_pipeline(*, jobs: int = 2, events: int = 2, name: str = "local/repo") -> Pipeline:
    pipeline = Pipeline.objects.create(
        name=name,
        scm_uri=f"local:/{name}:main",
        checkout_url=f"/srv/{name}.git#main",
        scm_repo={"name": name, "branch": "main", "private": False},
        workflow_graph={
            "nodes": [{"name": "~commit"}] + [{"name": f"job{i}"} for i in range(jobs)],
            "edges": [{"src": "~commit", "dest": "job0"}]
            + [{"src": f"job{i - 1}", "dest": f"job{i}"} for i in range(1, jobs)],
        },
    )
    alice = User.objects.filter(username="alice").first()
    if alice is not None:
        PipelinePermission.objects.create(pipeline=pipeline, user=alice, role="admin")
    job_rows = [Job.objects.create(pipeline=pipeline, name=f"job{i}") for i in range(jobs)]
    for e in range(events):
        event = Event.objects.create(
            pipeline=pipeline,
            sha=f"{e:040d}",
            start_from="~commit",
            commit={"message": f"commit {e}\n\nsecond paragraph"},
            creator={"name": "Alice", "username": "alice"},
            cause_message="Started by alice",
            status=Event.Status.SUCCESS,
        )
        for n, job in enumerate(job_rows):
            build = Build.objects.create(
                job=job, event=event, number=e * 1000 + n, sha=event.sha, status=BuildStatus.SUCCESS
            )
            Step.objects.create(build=build, position=0, name="sd-setup-scm", code=0)
        Pipeline.objects.filter(pk=pipeline.pk).update(last_event=event)
    pipeline.refresh_from_db()
    return pipeline
