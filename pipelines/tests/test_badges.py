"""Badges at Screwdriver's UI and API paths: SVG, escaped, cached by who may read them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from builds.models import Build, BuildStatus
from pipelines.models import Event, Job, Pipeline, PipelinePermission

pytestmark = pytest.mark.django_db


def make_pipeline(owner: User, *, private: bool, name: str = "local/<b>&x") -> Job:
    pipeline = Pipeline.objects.create(
        name=name,
        scm_uri=f"local:/srv/{len(name)}{private}.git:main",
        checkout_url="/srv/app.git#main",
        scm_repo={"branch": "main", "private": private},
    )
    PipelinePermission.objects.create(pipeline=pipeline, user=owner, role="admin")
    job = Job.objects.create(pipeline=pipeline, name="main")
    event = Event.objects.create(
        pipeline=pipeline, sha="a" * 40, start_from="~commit", status=Event.Status.FAILURE
    )
    Build.objects.create(job=job, event=event, number=1, sha=event.sha, status=BuildStatus.FAILURE)
    return job


def paths(job: Job) -> list[str]:
    p = job.pipeline_id
    return [
        f"/pipelines/{p}/badge",
        f"/pipelines/{p}/main/badge",
        f"/v4/pipelines/{p}/badge",
        f"/v4/pipelines/{p}/main/badge",
        f"/v4/jobs/{job.pk}/badge",
    ]


def test_a_public_pipelines_badges_need_no_sign_in_and_may_be_cached(owner: User) -> None:
    job = make_pipeline(owner, private=False)

    for path in paths(job):
        response = Client().get(path)
        assert response.status_code == 200, path
        assert response["Content-Type"] == "image/svg+xml; charset=utf-8"
        assert response["Cache-Control"] == "public, max-age=60, must-revalidate"
        assert "default-src 'none'" in response["Content-Security-Policy"]
        body = response.content.decode()
        assert body.startswith("<svg") and "failure" in body
        assert "&lt;b&gt;&amp;x" in body and "<b>" not in body, path


def test_a_job_badge_says_its_latest_builds_status(owner: User) -> None:
    job = make_pipeline(owner, private=False)
    event = Event.objects.create(pipeline=job.pipeline, sha="b" * 40, start_from="~commit")
    Build.objects.create(job=job, event=event, number=2, sha=event.sha, status=BuildStatus.SUCCESS)

    body = Client().get(f"/v4/jobs/{job.pk}/badge").content.decode()

    assert ">success</text>" in body and "failure" not in body


def test_a_private_pipelines_badges_are_hidden_from_outsiders(
    owner: User, member: User, member_client: Client
) -> None:
    job = make_pipeline(owner, private=True)
    api = APIClient()
    api.force_authenticate(member)

    for path in paths(job):
        assert Client().get(path).status_code == 404, path
        assert member_client.get(path).status_code == 404, path
        assert api.get(path).status_code == 404, path


def test_a_private_pipelines_badges_show_to_its_people_and_are_not_shared(
    owner: User, admin_client: Client
) -> None:
    job = make_pipeline(owner, private=True)

    for path in paths(job):
        response = admin_client.get(path)
        assert response.status_code == 200, path
        assert response["Cache-Control"] == "private, no-cache"
        assert "Cookie" in response["Vary"]


def test_unknown_jobs_and_pipelines_have_no_badge(owner: User) -> None:
    job = make_pipeline(owner, private=False)

    for path in [
        f"/pipelines/{job.pipeline_id}/nope/badge",
        f"/v4/pipelines/{job.pipeline_id}/nope/badge",
        f"/v4/jobs/{job.pk + 1000}/badge",
        "/pipelines/999999/badge",
    ]:
        assert Client().get(path).status_code == 404, path


def test_a_pipeline_without_events_is_unknown(owner: User) -> None:
    pipeline = Pipeline.objects.create(
        name="local/empty", scm_uri="local:/srv/empty.git:main", checkout_url="/srv/e.git#main"
    )

    assert b">unknown</text>" in Client().get(f"/pipelines/{pipeline.pk}/badge").content
