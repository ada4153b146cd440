"""The pipeline pages: list and create, one pipeline, its Start button, and sign-in."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from builds.models import Build, BuildStatus
from pipelines.models import Event, Job, Pipeline
from pipelines.tests.factories import ESCAPED, XSS, make_pipeline

pytestmark = pytest.mark.django_db


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


# --- sign-in -------------------------------------------------------------------------------


def test_anonymous_users_are_sent_to_the_sign_in_page(client: Client) -> None:
    pipeline = make_pipeline()
    for url in (
        reverse("pipelines:list"),
        reverse("pipelines:detail", args=[pipeline.pk]),
        reverse("pipelines:pulls", args=[pipeline.pk]),
        reverse("pipelines:pull", args=[pipeline.pk, 1]),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_the_root_redirects_to_the_pipeline_list(admin_client: Client) -> None:
    response = admin_client.get("/")
    assert response.status_code == 302
    assert response["Location"] == reverse("pipelines:list")


def test_the_sign_in_form_has_username_and_password_and_signs_in(client: Client) -> None:
    User.objects.create_user("carol", password="a long enough password")
    page = client.get(reverse("login")).content.decode()
    assert 'name="username"' in page and 'name="password"' in page
    response = client.post(
        reverse("login"), {"username": "carol", "password": "a long enough password"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("pipelines:list")


def test_sign_out_is_a_post_form_in_the_header(admin_client: Client) -> None:
    page = admin_client.get(reverse("pipelines:list")).content.decode()
    assert f'method="post" action="{reverse("logout")}"' in page
    assert admin_client.post(reverse("logout")).status_code == 302
    assert admin_client.get(reverse("pipelines:list")).status_code == 302


# --- the list ------------------------------------------------------------------------------


def test_the_list_shows_each_pipeline_with_its_last_event(admin_client: Client) -> None:
    pipeline = make_pipeline(events=3)
    response = admin_client.get(reverse("pipelines:list"))
    assert response.status_code == 200
    page = response.content.decode()
    assert reverse("pipelines:detail", args=[pipeline.pk]) in page
    assert pipeline.last_event is not None
    assert pipeline.last_event.sha[:7] in page
    assert "status-success" in page
    assert 'name="checkoutUrl"' in page


def test_the_list_escapes_pipeline_names_and_branches(member_client: Client) -> None:
    Pipeline.objects.create(
        name=XSS,
        scm_uri="local:/x:y",
        checkout_url="/x.git#y",
        scm_repo={"branch": XSS, "private": False},
    )
    page = member_client.get(reverse("pipelines:list")).content.decode()
    assert ESCAPED in page
    assert XSS not in page


def test_the_list_query_count_does_not_grow_with_pipelines(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    make_pipeline(name="a/one")
    make_pipeline(name="a/two")
    with django_assert_max_num_queries(50) as few:
        admin_client.get(reverse("pipelines:list"))
    for i in range(18):
        make_pipeline(name=f"b/{i}", jobs=1, events=1)
    with django_assert_max_num_queries(len(few.captured_queries)):
        admin_client.get(reverse("pipelines:list"))


def test_creating_from_a_broken_url_shows_the_error_in_the_form(
    admin_client: Client, tmp_path: Path
) -> None:
    response = admin_client.post(
        reverse("pipelines:list"), {"checkoutUrl": f"{tmp_path}/missing.git#main"}
    )
    assert response.status_code == 400
    assert 'class="error"' in response.content.decode()
    assert not Pipeline.objects.exists()


def test_creating_needs_a_checkout_url(admin_client: Client) -> None:
    response = admin_client.post(reverse("pipelines:list"), {"checkoutUrl": ""})
    assert response.status_code == 400
    assert not Pipeline.objects.exists()


def test_creating_from_a_real_repository_redirects_to_the_new_pipeline(
    admin_client: Client, repo: Path
) -> None:
    response = admin_client.post(reverse("pipelines:list"), {"checkoutUrl": f"{repo}#main"})
    pipeline = Pipeline.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("pipelines:detail", args=[pipeline.pk])
    assert pipeline.is_admin(User.objects.get(username="alice"))
    assert list(pipeline.jobs.values_list("name", flat=True)) == ["main"]


# --- one pipeline --------------------------------------------------------------------------


def test_the_pipeline_page_shows_jobs_events_and_builds(member_client: Client) -> None:
    pipeline = make_pipeline(jobs=2, events=2)
    response = member_client.get(reverse("pipelines:detail", args=[pipeline.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "/srv/local/repo.git#main" in page
    assert "job0" in page and "job1" in page
    assert "commit 1" in page and "second paragraph" not in page
    build = Build.objects.filter(event__pipeline=pipeline).first()
    assert build is not None
    assert reverse("builds:detail", args=[pipeline.pk, build.pk]) in page
    assert 'data-active="false"' in page


def test_a_pipeline_that_does_not_exist_is_404(member_client: Client) -> None:
    assert member_client.get(reverse("pipelines:detail", args=[999])).status_code == 404


def test_jobs_are_listed_in_workflow_order_with_what_they_require(member_client: Client) -> None:
    pipeline = make_pipeline(jobs=3, events=0)
    Job.objects.filter(pipeline=pipeline, name="job0").update(name="zeta")
    pipeline.workflow_graph = {
        "nodes": [{"name": "~commit"}, {"name": "job2"}, {"name": "job1"}, {"name": "zeta"}],
        "edges": [
            {"src": "~commit", "dest": "zeta"},
            {"src": "zeta", "dest": "job1"},
            {"src": "job1", "dest": "job2"},
        ],
    }
    pipeline.save()
    Job.objects.create(pipeline=pipeline, name="old", archived=True)
    page = member_client.get(reverse("pipelines:jobs", args=[pipeline.pk])).content.decode()
    assert page.index(">zeta") < page.index(">job1") < page.index(">job2")
    assert "<code>~commit</code>" in page
    assert ">old<" not in page


def test_the_page_refreshes_itself_while_an_event_is_active(member_client: Client) -> None:
    pipeline = make_pipeline(jobs=1, events=1)
    Build.objects.filter(event__pipeline=pipeline).update(status=BuildStatus.RUNNING)
    Event.objects.filter(pipeline=pipeline).update(status=Event.Status.IN_PROGRESS)
    page = member_client.get(reverse("pipelines:detail", args=[pipeline.pk])).content.decode()
    assert 'data-active="true"' in page
    assert '<meta http-equiv="refresh" content="3">' in page
    assert "js/pipeline.js" in page


def test_user_supplied_text_on_the_pipeline_page_is_escaped(member_client: Client) -> None:
    pipeline = make_pipeline(jobs=1, events=1)
    pipeline.scm_repo = {"branch": XSS}
    pipeline.save()
    Job.objects.filter(pipeline=pipeline).update(name=XSS)
    Event.objects.filter(pipeline=pipeline).update(
        commit={"message": XSS}, cause_message=XSS, creator={"name": XSS}
    )
    page = member_client.get(reverse("pipelines:detail", args=[pipeline.pk])).content.decode()
    assert ESCAPED in page
    assert XSS not in page


def test_the_pipeline_page_query_count_does_not_grow_with_rows(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    small = make_pipeline(jobs=2, events=2, name="s/small")
    big = make_pipeline(jobs=20, events=20, name="b/big")
    with django_assert_max_num_queries(50) as few:
        assert admin_client.get(reverse("pipelines:detail", args=[small.pk])).status_code == 200
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert admin_client.get(reverse("pipelines:detail", args=[big.pk])).status_code == 200


# --- the Start button ----------------------------------------------------------------------


def test_the_start_button_is_shown_to_admins_only(
    admin_client: Client, member_client: Client
) -> None:
    pipeline = make_pipeline()
    start = reverse("pipelines:start", args=[pipeline.pk])
    detail = reverse("pipelines:detail", args=[pipeline.pk])
    assert start in admin_client.get(detail).content.decode()
    assert start not in member_client.get(detail).content.decode()


def test_a_non_admin_cannot_start_a_pipeline(member_client: Client) -> None:
    pipeline = make_pipeline(events=0)
    response = member_client.post(reverse("pipelines:start", args=[pipeline.pk]))
    assert response.status_code == 403
    assert not Event.objects.exists()


def test_anonymous_start_is_sent_to_sign_in(client: Client) -> None:
    pipeline = make_pipeline(events=0)
    response = client.post(reverse("pipelines:start", args=[pipeline.pk]))
    assert response.status_code == 302
    assert not Event.objects.exists()


def test_start_only_accepts_post(admin_client: Client) -> None:
    pipeline = make_pipeline(events=0)
    assert admin_client.get(reverse("pipelines:start", args=[pipeline.pk])).status_code == 405


def test_an_admin_starts_an_event_from_the_branch_head(admin_client: Client, repo: Path) -> None:
    admin_client.post(reverse("pipelines:list"), {"checkoutUrl": f"{repo}#main"})
    pipeline = Pipeline.objects.get()
    response = admin_client.post(reverse("pipelines:start", args=[pipeline.pk]))
    assert response.status_code == 302
    event = Event.objects.get()
    assert response["Location"] == reverse("pipelines:event", args=[pipeline.pk, event.pk])
    assert event.start_from == "~commit"
    assert event.creator == {"name": "Alice", "username": "alice"}
    assert event.sha == git(repo, "rev-parse", "main")
    assert [b.job.name for b in event.builds.select_related("job")] == ["main"]
    page = admin_client.get(response["Location"]).content.decode()
    assert f"Event {event.pk} started." in page
