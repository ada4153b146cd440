"""A build's whole log as one download: every step in order, under a header line each."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from builds import logs
from builds.models import Build, BuildStatus, Step
from builds.tests.asgi_client import asgi_get
from builds.whole_log import text_chunks
from pipelines.models import Event, Job, Pipeline, PipelinePermission
from pipelines.services import create_user_token

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

    assert "".join(text_chunks(build)) == (
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

    chunks = list(text_chunks(build))
    lines = "".join(chunks).splitlines(keepends=True)

    published = lines[lines.index("=== step publish (not run) ===\n") + 1 :]
    assert published == [f"line {n}\n" for n in range(total)]
    assert chunks[-2:] == [
        "=== step publish (not run) ===\n" + "".join(published[:-5]),
        "".join(published[-5:]),
    ]


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


@pytest.mark.django_db(transaction=True)
@pytest.mark.filterwarnings("error")
def test_under_asgi_the_log_is_sent_while_it_is_still_being_read(owner: User) -> None:
    build = make_build(owner)
    install = Step.objects.get(build=build, name="install")
    total = logs.MAX_PAGES * logs.LINES_PER_PAGE * 2
    for seq, first in enumerate(range(2, total, logs.MAX_BATCH_LINES), start=1):
        count = min(logs.MAX_BATCH_LINES, total - first)
        lines = [{"t": T0, "m": f"line {n}"} for n in range(first, first + count)]
        logs.append_batch(step=install, seq=seq, first_line=first, lines=lines)

    def publish_writes() -> None:
        # The last step writes a line after the download began: a server that had read the
        # whole log before sending its first byte could not have it.
        write(Step.objects.get(build=build, name="publish"), ["written later"])

    token = create_user_token(user=owner, name="download").value
    status, body, chunks = async_to_sync(asgi_get)(
        f"/v4/builds/{build.pk}/logs", token, sync_to_async(publish_writes)
    )

    assert status == 200
    text = body.decode()
    assert text.endswith("=== step publish (not run) ===\nwritten later\n")
    assert f"line {total - 1}\n" in text
    assert chunks > 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.filterwarnings("error")
def test_under_asgi_a_steps_log_download_is_sent_batch_by_batch(owner: User) -> None:
    build = make_build(owner)
    step = Step.objects.get(build=build, name="publish")
    write(step, ["first batch"])
    logs.append_batch(step=step, seq=1, first_line=1, lines=[{"t": T0, "m": "second batch"}])

    async def nothing() -> None:
        return None

    token = create_user_token(user=owner, name="download").value
    status, body, chunks = async_to_sync(asgi_get)(
        f"/v4/builds/{build.pk}/steps/publish/logs?type=download", token, nothing
    )

    assert (status, body, chunks) == (200, b"first batch\nsecond batch\n", 2)
