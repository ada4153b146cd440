"""The pipeline pages beyond the basics: search, collections, graph, events, Start with
parameters, restart, stop, the jobs list, and who may do what."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from builds.models import Build, BuildStatus, StageBuild
from pipelines.models import Event, Job, Pipeline, PipelinePermission, Stage
from pipelines.selectors import job_outcome
from pipelines.tests.factories import XSS, make_pipeline

pytestmark = pytest.mark.django_db


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
    for name in ("pipelines:detail", "pipelines:jobs", "pipelines:pulls", "pipelines:metrics"):
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
    # Pipeline 77 does not exist: the remote node is drawn, but as plain text.
    assert ">sd@77:deploy</text>" in page and 'href="/pipelines/77"' not in page
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


# --- matrix permutations, remote nodes, stages and the waiting statuses -----------------------


def matrix_event(
    *, versions: list[str], statuses: list[str], job_name: str = "test"
) -> tuple[Pipeline, list[Build]]:
    """A one-event pipeline whose job `job_name` ran once per NODE version."""
    pipeline = make_pipeline(jobs=1, events=1)
    event = Event.objects.get(pipeline=pipeline)
    job = Job.objects.create(pipeline=pipeline, name=job_name)
    event.workflow_graph = {
        "nodes": [{"name": "~commit"}, {"name": "job0"}, {"name": job_name}],
        "edges": [{"src": "~commit", "dest": "job0"}, {"src": "job0", "dest": job_name}],
    }
    event.save()
    builds = [
        Build.objects.create(
            job=job,
            event=event,
            permutation=i,
            number=100 + i,
            sha=event.sha,
            status=status,
            environment={"NODE": version, "SHARED": "same"},
            container=f"node:{version}",
        )
        for i, (version, status) in enumerate(zip(versions, statuses, strict=True))
    ]
    return pipeline, builds


def test_a_matrix_jobs_permutations_are_marks_on_its_node_each_linking_to_its_build(
    member_client: Client,
) -> None:
    pipeline, builds = matrix_event(
        versions=["18", "20", "22"],
        statuses=[BuildStatus.SUCCESS, BuildStatus.FAILURE, BuildStatus.RUNNING],
    )
    page = page_of(member_client, "pipelines:detail", pipeline.pk)
    node = page.split('data-job="test"')[1].split("</g>")[0]
    assert node.count('class="mark-link"') == 3
    for build, version, status in zip(
        builds, ["18", "20", "22"], ["success", "failure", "running"], strict=True
    ):
        href = reverse("builds:detail", args=[pipeline.pk, build.pk])
        assert f'href="{href}"' in node
        assert f'class="mark mark-{status}"' in node
        # The title names what differs between permutations, not what they share.
        assert f"NODE={version} image=node:{version}: {status.upper()}" in node
    assert "SHARED" not in node
    # While one permutation runs the job is running; the one-build job0 gets no marks.
    assert 'class="node node-job node-running node-matrix" data-job="test"' in page
    job0 = page.split('data-job="job0"')[1].split("</g>")[0]
    assert "mark-link" not in job0


def test_the_event_build_list_groups_permutations_under_their_job(member_client: Client) -> None:
    pipeline, builds = matrix_event(
        versions=["18", "20"], statuses=[BuildStatus.SUCCESS, BuildStatus.FAILURE]
    )
    page = page_of(member_client, "pipelines:detail", pipeline.pk)
    group = page.split('class="matrix-job" data-job="test"')[1].split("</li>\n              </ul>")[
        0
    ]
    assert "2 permutations" in group and "status-failure" in group
    for build in builds:
        assert reverse("builds:detail", args=[pipeline.pk, build.pk]) in group
    assert "<code>NODE=18 image=node:18</code>" in group


def test_a_matrix_jobs_outcome_is_running_while_any_runs_then_its_worst_permutation() -> None:
    assert job_outcome(["SUCCESS", "RUNNING", "FAILURE"]) == "RUNNING"
    assert job_outcome(["SUCCESS", "FROZEN"]) == "FROZEN"
    assert job_outcome(["SUCCESS", "FAILURE", "SUCCESS"]) == "FAILURE"
    assert job_outcome(["SUCCESS", "UNSTABLE"]) == "UNSTABLE"
    assert job_outcome(["SUCCESS", "SUCCESS"]) == "SUCCESS"


def test_a_job_name_or_matrix_value_holding_a_script_is_escaped(member_client: Client) -> None:
    script = "<script>alert(1)</script>"
    pipeline, _ = matrix_event(
        versions=[script, "20"],
        statuses=[BuildStatus.SUCCESS, BuildStatus.SUCCESS],
        job_name=f"{script}job",
    )
    page = page_of(member_client, "pipelines:detail", pipeline.pk)
    assert script not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;job" in page
    assert "NODE=&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_remote_node_links_only_to_a_pipeline_the_viewer_may_read(member_client: Client) -> None:
    pipeline = make_pipeline(jobs=1, events=1)
    public = make_pipeline(name="team/public", events=0)
    private = make_pipeline(name="team/hidden-name", events=0)
    Pipeline.objects.filter(pk=private.pk).update(scm_repo={"branch": "main", "private": True})
    Event.objects.filter(pipeline=pipeline).update(
        workflow_graph={
            "nodes": [
                {"name": "~commit"},
                {"name": "job0"},
                {"name": f"sd@{public.pk}:deploy"},
                {"name": f"~sd@{private.pk}:main"},
                {"name": "sd@999999:gone"},
            ],
            "edges": [
                {"src": "~commit", "dest": "job0"},
                {"src": f"~sd@{private.pk}:main", "dest": "job0"},
                {"src": "job0", "dest": f"sd@{public.pk}:deploy"},
                {"src": "job0", "dest": "sd@999999:gone"},
            ],
        }
    )
    page = page_of(member_client, "pipelines:detail", pipeline.pk)
    assert f'href="/pipelines/{public.pk}"' in page
    assert f'href="/pipelines/{private.pk}"' not in page and 'href="/pipelines/999999"' not in page
    assert f"~sd@{private.pk}:main" in page and "hidden-name" not in page
    grant(private, "bob", "pull")
    page = page_of(member_client, "pipelines:detail", pipeline.pk)
    assert f'href="/pipelines/{private.pk}"' in page


def test_a_remote_event_names_the_build_that_triggered_it_and_links_it_when_readable(
    member_client: Client,
) -> None:
    upstream = make_pipeline(name="team/upstream", jobs=1, events=1)
    parent = Build.objects.get(job__pipeline=upstream)
    downstream = make_pipeline(name="team/downstream", jobs=1, events=1)
    Event.objects.filter(pipeline=downstream).update(
        parent_build=parent, cause_message=f"Triggered by sd@{upstream.pk}:job0"
    )
    page = page_of(member_client, "pipelines:detail", downstream.pk)
    link = reverse("builds:detail", args=[upstream.pk, parent.pk])
    assert f'Triggered by <a href="{link}">sd@{upstream.pk}:job0</a>' in page
    Pipeline.objects.filter(pk=upstream.pk).update(scm_repo={"branch": "main", "private": True})
    page = page_of(member_client, "pipelines:detail", downstream.pk)
    assert f"Triggered by sd@{upstream.pk}:job0" in page and link not in page
    assert "team/upstream" not in page


def test_the_event_shows_each_stage_builds_status_by_its_box_and_in_a_list(
    member_client: Client,
) -> None:
    pipeline = make_pipeline(jobs=2, events=1)
    event = Event.objects.get(pipeline=pipeline)
    event.workflow_graph = {
        "nodes": [
            {"name": "~commit"},
            {"name": "job0", "stageName": "canary"},
            {"name": "job1", "stageName": "production"},
        ],
        "edges": [{"src": "~commit", "dest": "job0"}, {"src": "job0", "dest": "job1"}],
    }
    event.save()
    for name, status in (("canary", BuildStatus.SUCCESS), ("production", BuildStatus.FAILURE)):
        stage = Stage.objects.create(pipeline=pipeline, name=name)
        StageBuild.objects.create(stage=stage, event=event, status=status)
    page = page_of(member_client, "pipelines:detail", pipeline.pk)
    assert 'class="stage stage-success" data-stage="canary"' in page
    assert '<tspan class="stage-status">· FAILURE</tspan>' in page
    listed = page.split('class="stage-builds"')[1].split("</ul>")[0]
    assert "<strong>canary</strong>" in listed and "status-success" in listed
    assert "<strong>production</strong>" in listed and "status-failure" in listed


def test_frozen_blocked_and_collapsed_builds_have_their_own_styles_labels_and_reasons(
    member_client: Client,
) -> None:
    pipeline = make_pipeline(jobs=3, events=1)
    message = "Blocked by freeze window, re-queued at 2026-12-24T18:00:00Z."
    Build.objects.filter(job__name="job0").update(status=BuildStatus.FROZEN, status_message=message)
    Build.objects.filter(job__name="job1").update(status=BuildStatus.BLOCKED)
    Build.objects.filter(job__name="job2").update(status=BuildStatus.COLLAPSED)
    page = page_of(member_client, "pipelines:detail", pipeline.pk)
    for status in ("frozen", "blocked", "collapsed"):
        assert f'class="node node-job node-{status}"' in page
        assert f'class="badge status-{status}"' in page
        assert f"key-{status}" in page  # the legend names it
    assert f'<span class="status-note">{message}</span>' in page
    assert f"<title>job0: FROZEN — {message}</title>" in page  # the graph node says it too
    assert 'title="Waiting for the job\'s freeze window to end">FROZEN<' in page
