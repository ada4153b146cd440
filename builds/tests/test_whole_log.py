"""A build's whole log as one download: every step in order, under a header line each."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from builds import logs
from builds.models import Build, BuildStatus, Step
from builds.whole_log import text_lines
from pipelines.models import Event, Job, Pipeline, PipelinePermission

pytestmark = pytest.mark.django_db


def body_of(response: Any) -> str:
    assert response.streaming, "the log is streamed, never built whole"
    return b"".join(response.streaming_content).decode()


T0 = 1_700_000_000_000


def make_build(owner: User, *, private: bool = False) -> Build:
    pipeline = Pipeline.objects.create(
        name="local/app",
        scm_uri="local:/srv/app.git:main",
        checkout_url="/srv/app.git#main",
        scm_repo={"branch": "main", "private": private},
    )
    PipelinePermission.objects.create(pipeline=pipeline, user=owner, role="admin")
    job = Job.objects.create(pipeline=pipeline, name="main")
    event = Event.objects.create(pipeline=pipeline, sha="a" * 40, start_from="~commit")
    build = Build.objects.create(
        job=job, event=event, number=1, sha=event.sha, status=BuildStatus.FAILURE
    )
    # Made out of order, so the file's order can only come from the steps' positions.
    test = Step.objects.create(build=build, position=2, name="test", code=1)
    setup = Step.objects.create(build=build, position=1, name="install", code=0)
    Step.objects.create(build=build, position=3, name="publish")
    write(setup, ["npm ci", "added 3 packages"])
    write(test, ["<b>1 failed</b>", "caf\N{LATIN SMALL LETTER E WITH ACUTE}"])
    return build


def write(step: Step, texts: list[str]) -> None:
    lines = [{"t": T0 + i, "m": text} for i, text in enumerate(texts)]
    logs.append_batch(step=step, seq=0, first_line=0, lines=lines)


def test_every_step_comes_in_order_under_its_header(owner: User) -> None:
    build = make_build(owner)

    assert "".join(text_lines(build)) == (
        "=== step install (exit code 0) ===\n"
        "npm ci\n"
        "added 3 packages\n"
        "=== step test (exit code 1) ===\n"
        "<b>1 failed</b>\n"
        "café\n"
        "=== step publish (not run) ===\n"
    )


def test_a_log_longer_than_one_read_is_read_page_after_page(owner: User) -> None:
    build = make_build(owner)
    step = Step.objects.get(build=build, name="publish")
    total = logs.MAX_PAGES * logs.LINES_PER_PAGE + 5
    for seq, first in enumerate(range(0, total, logs.MAX_BATCH_LINES)):
        count = min(logs.MAX_BATCH_LINES, total - first)
        logs.append_batch(
            step=step,
            seq=seq,
            first_line=first,
            lines=[{"t": T0, "m": f"line {n}"} for n in range(first, first + count)],
        )

    lines = list(text_lines(build))

    published = lines[lines.index("=== step publish (not run) ===\n") + 1 :]
    assert published == [f"line {n}\n" for n in range(total)]


def test_the_api_streams_it_as_a_text_attachment(owner: User) -> None:
    build = make_build(owner)
    client = APIClient()
    client.force_authenticate(owner)

    response = client.get(f"/v4/builds/{build.pk}/logs")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="build-{build.pk}.log"'
    body = body_of(response)
    assert body.startswith("=== step install (exit code 0) ===\nnpm ci\n")


def test_an_outsider_cannot_download_a_private_pipelines_log(owner: User, member: User) -> None:
    build = make_build(owner, private=True)
    client = APIClient()
    client.force_authenticate(member)

    assert client.get(f"/v4/builds/{build.pk}/logs").status_code in (403, 404)
    ui = Client()
    ui.force_login(member)
    assert ui.get(reverse("builds:log", args=[build.job.pipeline_id, build.pk])).status_code == 404


def test_anonymous_people_get_no_log(owner: User, client: Client) -> None:
    build = make_build(owner)

    assert APIClient().get(f"/v4/builds/{build.pk}/logs").status_code == 401
    response = client.get(reverse("builds:log", args=[build.job.pipeline_id, build.pk]))
    assert response.status_code == 302


def test_the_build_page_links_the_download(owner: User, member_client: Client) -> None:
    build = make_build(owner)
    url = reverse("builds:log", args=[build.job.pipeline_id, build.pk])
    assert url == f"/pipelines/{build.job.pipeline_id}/builds/{build.pk}/log.txt"

    page = member_client.get(reverse("builds:detail", args=[build.job.pipeline_id, build.pk]))
    assert f'href="{url}"' in page.content.decode()
    response = member_client.get(url)
    assert response.status_code == 200
    assert body_of(response).endswith("=== step publish (not run) ===\n")
