"""The pipeline pages beyond the basics: search, collections, graph, events, Start with
parameters, restart, stop, the jobs list, and who may do what."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from builds.models import Build, BuildStatus
from pipelines.models import Event, Job, Pipeline, PipelinePermission
from pipelines.tests.test_views import XSS, admin_client, make_pipeline, member_client, repo

pytestmark = pytest.mark.django_db
__all__ = ["admin_client", "member_client", "repo"]


@pytest.fixture
def pusher_client() -> Client:
    """Carol, who may start and stop but not change settings."""
    client = Client()
    client.force_login(User.objects.create_user("carol"))
    return client


def grant(pipeline: Pipeline, username: str, role: str) -> None:
    PipelinePermission.objects.create(
        pipeline=pipeline, user=User.objects.get(username=username), role=role
    )


def page_of(client: Client, name: str, *args: int, **query: str) -> str:
    response = client.get(reverse(name, args=list(args)), query)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


# --- home: search and collections ------------------------------------------------------------


def test_the_home_page_searches_names_and_urls(admin_client: Client) -> None:
    make_pipeline(name="team/frontend", events=0)
    make_pipeline(name="team/backend", events=0)
    page = page_of(admin_client, "pipelines:list", q="front")
    assert "team/frontend" in page and "team/backend" not in page
    assert "No pipeline matches" in page_of(admin_client, "pipelines:list", q="nothing-like-it")


def test_my_pipelines_are_the_ones_i_hold_a_role_on(admin_client: Client) -> None:
    make_pipeline(name="alice/mine", events=0)
    alice = User.objects.get(username="alice")
    PipelinePermission.objects.filter(user=alice).delete()
    other = make_pipeline(name="someone/else", events=0)
    PipelinePermission.objects.filter(pipeline=other).delete()
    grant(Pipeline.objects.get(name="alice/mine"), "alice", "push")
    page = page_of(admin_client, "pipelines:list", collection="mine")
    assert "alice/mine" in page and "someone/else" not in page
    assert "someone/else" in page_of(admin_client, "pipelines:list")


def test_an_outsider_neither_lists_nor_opens_a_private_pipeline(member_client: Client) -> None:
    secret = make_pipeline(name="secret/repo")
    Pipeline.objects.filter(pk=secret.pk).update(scm_repo={"branch": "main", "private": True})
    assert "secret/repo" not in page_of(member_client, "pipelines:list")
    for name in ("pipelines:detail", "pipelines:jobs"):
        assert member_client.get(reverse(name, args=[secret.pk])).status_code == 404


# --- the workflow graph and the events list ----------------------------------------------------


def test_the_graph_draws_jobs_with_statuses_triggers_joins_and_remote_pipelines(
    member_client: Client,
) -> None:
    pipeline = make_pipeline(jobs=2, events=1)
    event = Event.objects.get(pipeline=pipeline)
    event.workflow_graph = {
        "nodes": [
            {"name": "~commit"},
            {"name": "~pr"},
            {"name": "job0"},
            {"name": "job1"},
            {"name": "sd@77:deploy"},
        ],
        "edges": [
            {"src": "~commit", "dest": "job0"},
            {"src": "job0", "dest": "job1", "join": True},
            {"src": "job1", "dest": "sd@77:deploy"},
        ],
    }
    event.save()
    Build.objects.filter(job__name="job1").update(status=BuildStatus.FAILURE)
    page = page_of(member_client, "pipelines:detail", pipeline.pk)
    assert "<svg" in page and 'class="node node-job node-success"' in page
    assert 'class="node node-job node-failure"' in page
    assert ">~commit</text>" in page and ">~pr</text>" not in page  # unused triggers hidden
    assert 'class="edge edge-join"' in page and 'class="edge edge-or"' in page
    assert 'href="/pipelines/77"' in page
    build = Build.objects.get(job__name="job0")
    assert reverse("builds:detail", args=[pipeline.pk, build.pk]) in page


def test_an_older_event_can_be_selected_and_its_graph_is_shown(member_client: Client) -> None:
    pipeline = make_pipeline(jobs=1, events=2)
    first = Event.objects.filter(pipeline=pipeline).order_by("id").first()
    assert first is not None
    page = page_of(member_client, "pipelines:event", pipeline.pk, first.pk)
    assert f"Event #{first.pk}</h2>" in page
    assert f'id="event-{first.pk}" class="selected"' in page
    other = make_pipeline(name="x/other", events=1)
    event_of_other = Event.objects.get(pipeline=other)
    response = member_client.get(reverse("pipelines:event", args=[pipeline.pk, event_of_other.pk]))
    assert response.status_code == 404


def test_the_events_list_shows_commit_author_cause_builds_duration_and_pr(
    member_client: Client,
) -> None:
    pipeline = make_pipeline(jobs=2, events=1)
    Event.objects.filter(pipeline=pipeline).update(
        commit={"message": "Fix the thing\n\nmore detail", "author": {"name": "Dana Dev"}},
        pr_num=42,
        pr={"url": "https://example.com/pr/42"},
        type=Event.Type.PR,
    )
    page = page_of(member_client, "pipelines:detail", pipeline.pk)
    assert "Fix the thing" in page and "more detail" not in page.split('id="events-heading"')[1]
    assert "Dana Dev" in page and "Started by alice" in page
    assert "2 success" in page
    assert 'href="https://example.com/pr/42">PR #42</a>' in page


# --- Start with parameters, restart, stop -----------------------------------------------------


def test_start_sends_the_parameters_form_as_event_meta(admin_client: Client, repo: Path) -> None:
    admin_client.post(reverse("pipelines:list"), {"checkoutUrl": f"{repo}#main"})
    pipeline = Pipeline.objects.get()
    Pipeline.objects.filter(pk=pipeline.pk).update(
        parameters={"region": ["eu", "us"], "note": {"value": "hi", "description": "Say"}}
    )
    page = page_of(admin_client, "pipelines:detail", pipeline.pk)
    assert 'name="param_region"' in page and 'value="hi"' in page and "Say" in page
    admin_client.post(
        reverse("pipelines:start", args=[pipeline.pk]),
        {"param_region": "us", "param_note": "<b>x</b>"},
    )
    event = Event.objects.get()
    assert event.meta["parameters"] == {"region": {"value": "us"}, "note": {"value": "<b>x</b>"}}


def test_restart_from_a_job_keeps_the_commit_and_meta_or_starts_fresh(
    admin_client: Client, repo: Path
) -> None:
    admin_client.post(reverse("pipelines:list"), {"checkoutUrl": f"{repo}#main"})
    pipeline = Pipeline.objects.get()
    admin_client.post(reverse("pipelines:start", args=[pipeline.pk]))
    first = Event.objects.get()
    Event.objects.filter(pk=first.pk).update(meta={"kept": "yes"})
    url = reverse("pipelines:event-restart", args=[pipeline.pk, first.pk])
    response = admin_client.post(url, {"start_from": "main", "mode": "inherit"})
    again = Event.objects.exclude(pk=first.pk).get()
    assert response["Location"] == reverse("pipelines:event", args=[pipeline.pk, again.pk])
    assert again.parent_event_id == first.pk and again.sha == first.sha
    assert again.meta["kept"] == "yes"
    admin_client.post(url, {"start_from": "main", "mode": "fresh"})
    fresh = Event.objects.order_by("-id").first()
    assert fresh is not None and fresh.parent_event_id is None and fresh.meta == {}
    bad = admin_client.post(url, {"start_from": "nope", "mode": "inherit"}, follow=True)
    assert "nope is not a job" in bad.content.decode()


def test_stop_event_aborts_its_active_builds(pusher_client: Client) -> None:
    pipeline = make_pipeline(jobs=2, events=1)
    grant(pipeline, "carol", "push")
    event = Event.objects.get(pipeline=pipeline)
    Build.objects.filter(event=event).update(status=BuildStatus.RUNNING)
    Event.objects.filter(pk=event.pk).update(status=Event.Status.IN_PROGRESS)
    page = page_of(pusher_client, "pipelines:detail", pipeline.pk)
    stop = reverse("pipelines:event-stop", args=[pipeline.pk, event.pk])
    assert stop in page
    assert pusher_client.post(stop).status_code == 302
    assert set(Build.objects.filter(event=event).values_list("status", flat=True)) == {"ABORTED"}


def test_people_without_push_rights_cannot_start_restart_or_stop(member_client: Client) -> None:
    pipeline = make_pipeline(jobs=1, events=1)
    event = Event.objects.get(pipeline=pipeline)
    page = page_of(member_client, "pipelines:detail", pipeline.pk)
    assert reverse("pipelines:start", args=[pipeline.pk]) not in page
    assert "Restart from a job" not in page
    for url in (
        reverse("pipelines:start", args=[pipeline.pk]),
        reverse("pipelines:event-restart", args=[pipeline.pk, event.pk]),
        reverse("pipelines:event-stop", args=[pipeline.pk, event.pk]),
    ):
        assert member_client.post(url, {"start_from": "job0"}).status_code == 403
    assert Event.objects.count() == 1


# --- the jobs list ------------------------------------------------------------------------------


def test_the_jobs_list_shows_each_jobs_recent_builds_and_why_it_is_disabled(
    member_client: Client,
) -> None:
    pipeline = make_pipeline(jobs=2, events=7)
    Job.objects.filter(name="job1").update(
        state=Job.State.DISABLED, state_change_message=XSS, state_changer="alice"
    )
    page = page_of(member_client, "pipelines:jobs", pipeline.pk)
    job0 = Build.objects.filter(job__name="job0").order_by("-id")
    shown = [b.pk for b in job0[:5]]
    hidden = [b.pk for b in job0[5:]]
    for pk in shown:
        assert reverse("builds:detail", args=[pipeline.pk, pk]) in page
    for pk in hidden:
        assert reverse("builds:detail", args=[pipeline.pk, pk]) + '"' not in page
    assert "DISABLED" in page and XSS not in page and "&lt;img" in page
