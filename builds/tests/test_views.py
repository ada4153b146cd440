"""The build page: status banner, steps and log hooks, and the Stop button."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from builds.logs import append_batch
from builds.models import Build, BuildStatus, Step
from pipelines.models import Event, Job, Pipeline, PipelinePermission

pytestmark = pytest.mark.django_db

XSS = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


def make_build(
    *, status: str = BuildStatus.RUNNING, job_name: str = "main", name: str = "local/repo"
) -> Build:
    pipeline = Pipeline.objects.create(
        name=name,
        scm_uri=f"local:/{name}:main",
        checkout_url=f"/srv/{name}.git#main",
        scm_repo={"branch": "main", "private": False},
    )
    # Rights live in PipelinePermission; `admins` is only Screwdriver's output field.
    alice, _ = User.objects.get_or_create(username="alice")
    PipelinePermission.objects.create(pipeline=pipeline, user=alice, role="admin")
    job = Job.objects.create(pipeline=pipeline, name=job_name)
    event = Event.objects.create(
        pipeline=pipeline,
        sha="a" * 40,
        start_from="~commit",
        commit={"message": "first"},
        workflow_graph={
            "nodes": [{"name": "~commit"}, {"name": job_name}],
            "edges": [{"src": "~commit", "dest": job_name}],
        },
        status=Event.Status.IN_PROGRESS,
    )
    build = Build.objects.create(
        job=job,
        event=event,
        number=1,
        sha=event.sha,
        cause="Started by alice",
        status=status,
    )
    Step.objects.create(build=build, position=0, name="sd-setup-scm", code=0)
    Step.objects.create(build=build, position=1, name="test")
    return build


def url_of(build: Build, name: str = "builds:detail") -> str:
    return reverse(name, args=[build.job.pipeline_id, build.pk])


def test_anonymous_users_are_sent_to_the_sign_in_page(client: Client) -> None:
    build = make_build()
    response = client.get(url_of(build))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_build_page_shows_status_steps_and_log_hooks(member_client: Client) -> None:
    build = make_build()
    response = member_client.get(url_of(build))
    assert response.status_code == 200
    page = response.content.decode()
    assert "status-running" in page
    assert "sd-setup-scm" in page and "exit 0" in page
    logs = reverse("api:build-step-logs", args=[build.pk, "test"])
    assert logs == f"/v4/builds/{build.pk}/steps/test/logs"
    assert f'data-build-url="{reverse("api:build-detail", args=[build.pk])}"' in page
    assert f'data-logs-url="{logs}"' in page
    assert f'href="{logs}?from=0&amp;pages=100"' in page
    assert f'href="{logs}?type=download"' in page
    assert "js/build.js" in page
    assert reverse("pipelines:detail", args=[build.job.pipeline_id]) in page


def test_a_build_of_another_pipeline_is_404(admin_client: Client) -> None:
    build = make_build()
    other = make_build(name="other/repo")
    response = admin_client.get(reverse("builds:detail", args=[other.job.pipeline_id, build.pk]))
    assert response.status_code == 404
    stop = reverse("builds:stop", args=[other.job.pipeline_id, build.pk])
    assert admin_client.post(stop).status_code == 404


def test_user_supplied_text_on_the_build_page_is_escaped(member_client: Client) -> None:
    build = make_build(job_name=XSS)
    Step.objects.filter(build=build, name="test").update(name=XSS)
    Build.objects.filter(pk=build.pk).update(cause=XSS, status_message=XSS)
    Pipeline.objects.filter(pk=build.job.pipeline_id).update(name=XSS)
    page = member_client.get(url_of(build)).content.decode()
    assert ESCAPED in page
    assert XSS not in page
    # The step name is a path segment of the logs URL: encoded, not just escaped.
    assert reverse("api:build-step-logs", args=[build.pk, XSS]).startswith("/v4/")
    assert reverse("api:build-step-logs", args=[build.pk, XSS]) in page


def test_the_stop_button_is_shown_to_admins_while_the_build_runs(
    admin_client: Client, member_client: Client
) -> None:
    build = make_build()
    stop = url_of(build, "builds:stop")
    assert stop in admin_client.get(url_of(build)).content.decode()
    assert stop not in member_client.get(url_of(build)).content.decode()


def test_the_stop_button_is_gone_once_the_build_finished(admin_client: Client) -> None:
    build = make_build(status=BuildStatus.SUCCESS)
    assert url_of(build, "builds:stop") not in admin_client.get(url_of(build)).content.decode()


def test_a_non_admin_cannot_stop_a_build(member_client: Client) -> None:
    build = make_build()
    assert member_client.post(url_of(build, "builds:stop")).status_code == 403
    build.refresh_from_db()
    assert build.status == BuildStatus.RUNNING


def test_anonymous_stop_is_sent_to_sign_in(client: Client) -> None:
    build = make_build()
    assert client.post(url_of(build, "builds:stop")).status_code == 302
    build.refresh_from_db()
    assert build.status == BuildStatus.RUNNING


def test_an_admin_stops_a_running_build(admin_client: Client) -> None:
    build = make_build()
    response = admin_client.post(url_of(build, "builds:stop"))
    assert response.status_code == 302
    assert response["Location"] == url_of(build)
    build.refresh_from_db()
    assert build.status == BuildStatus.ABORTED
    assert build.status_message == "Aborted by alice"


def test_stopping_a_finished_build_says_so(admin_client: Client) -> None:
    build = make_build(status=BuildStatus.SUCCESS)
    response = admin_client.post(url_of(build, "builds:stop"), follow=True)
    assert "has already finished" in response.content.decode()
    build.refresh_from_db()
    assert build.status == BuildStatus.SUCCESS


def test_stop_only_accepts_post(admin_client: Client) -> None:
    build = make_build()
    assert admin_client.get(url_of(build, "builds:stop")).status_code == 405


def test_the_api_that_build_js_polls_answers_a_signed_in_user(member_client: Client) -> None:
    build = make_build()
    step = Step.objects.get(build=build, name="test")
    append_batch(step=step, seq=0, first_line=0, lines=[{"t": 1, "m": XSS}, {"t": 2, "m": "b"}])
    detail = member_client.get(reverse("api:build-detail", args=[build.pk])).json()
    assert detail["status"] == "RUNNING"
    assert [s["name"] for s in detail["steps"]] == ["sd-setup-scm", "test"]
    # Unset fields are left out, as Screwdriver does; build.js treats a missing key as unset.
    assert detail["steps"][0]["code"] == 0
    assert detail["steps"][1]["lines"] == 2 and "code" not in detail["steps"][1]
    logs = reverse("api:build-step-logs", args=[build.pk, "test"])
    response = member_client.get(f"{logs}?from=1")
    assert response["X-More-Data"] == "true"
    assert response.json() == [{"n": 1, "t": 2, "m": "b", "s": "test"}]


def test_a_permutations_page_names_its_matrix_values_and_links_its_siblings(
    member_client: Client,
) -> None:
    build = make_build(status=BuildStatus.SUCCESS)
    Build.objects.filter(pk=build.pk).update(environment={"NODE": "18", "CI": "yes"})
    sibling = Build.objects.create(
        job=build.job,
        event=build.event,
        permutation=1,
        number=2,
        sha=build.sha,
        status=BuildStatus.FAILURE,
        environment={"NODE": XSS, "CI": "yes"},
    )
    page = member_client.get(url_of(build)).content.decode()
    assert "Permutation 1 of 2:" in page
    assert 'aria-current="page"><code>NODE=18</code>' in page
    assert f'href="{url_of(sibling)}"' in page and f"NODE={ESCAPED}" in page
    assert XSS not in page and "CI=yes" not in page


def test_a_frozen_build_shows_when_it_will_be_requeued_in_its_own_style(
    member_client: Client,
) -> None:
    message = "Blocked by freeze window, re-queued at 2026-12-24T18:00:00Z."
    build = make_build(status=BuildStatus.FROZEN)
    Build.objects.filter(pk=build.pk).update(status_message=message)
    page = member_client.get(url_of(build)).content.decode()
    assert 'class="badge status-frozen"' in page and "status-border-frozen" in page
    assert f'class="status-message status-message-frozen">{message}</p>' in page
    assert "Permutation" not in page  # a job without a matrix has no permutation bar
