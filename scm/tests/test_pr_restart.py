"""Starting a pull request's jobs again: Screwdriver's rule, on POST /v4/events and in the UI.

People with push rights always may; without them only the pull request's author may, and
only where restrictPR restricts nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import respx
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client

from builds.models import Build
from pipelines.models import Event, Pipeline, PipelinePermission
from pipelines.services import create_pipeline
from pipelines.tests.api_fixtures import with_bearer
from scm.models import WebhookDelivery
from scm.tasks import process_delivery
from scm.tests.github_fakes import SECRET, deliver, fake_github
from scm.tests.scm_people import repository_admin
from screwdriver_site.api.tokens import issue_user_token

pytestmark = pytest.mark.django_db

REPO = "Codertocat/Hello-World"
PR_SHA = "e" * 40
CONFIG = b"""
jobs:
  main:
    image: node:20
    requires: [~commit]
    steps:
      - build: echo main
  test:
    image: node:20
    requires: [~pr]
    steps:
      - test: echo test
"""


@pytest.fixture
def pipeline(settings: Any) -> Iterator[Pipeline]:
    """A GitHub pipeline (admin: octo) with readers mallory and bob and pusher carol."""
    settings.SD_GITHUB_WEBHOOK_SECRET = SECRET
    settings.SD_GITHUB_TOKEN = "server-token"
    settings.SD_GITHUB_API_URL = "https://api.github.com"
    settings.SD_RESTRICT_PR = "none"
    with respx.mock(assert_all_called=False) as router:
        fake_github(router, (REPO,), config=CONFIG)
        users = get_user_model().objects
        made = create_pipeline(
            checkout_url=f"https://github.com/{REPO}.git#master",
            user=repository_admin("octo"),
        )
        for name, role in (("mallory", "pull"), ("bob", "pull"), ("carol", "push")):
            PipelinePermission.objects.create(
                pipeline=made, user=users.create_user(name), role=role, granted_by="octo"
            )
        yield made


@pytest.fixture
def pr_build(client: Client, pipeline: Pipeline) -> Build:
    """PR-7:test of a fork pull request that mallory opened, built while nothing was restricted."""
    payload = {
        "action": "opened",
        "number": 7,
        "pull_request": {
            "number": 7,
            "title": "Change things",
            "html_url": f"https://github.com/{REPO}/pull/7",
            "user": {"login": "mallory"},
            "head": {"sha": PR_SHA, "ref": "patch", "repo": {"full_name": "mallory/Hello-World"}},
            "base": {"ref": "master", "repo": {"full_name": REPO}},
        },
        "repository": {"full_name": REPO, "default_branch": "master"},
        "sender": {"login": "mallory"},
    }
    assert deliver(client, "pull_request", payload, delivery="d-1").status_code == 202
    process_delivery(WebhookDelivery.objects.get(delivery_id="d-1").pk)
    return Build.objects.select_related("event").get(job__name="PR-7:test")


def restrict(pipeline: Pipeline, value: str) -> None:
    # What a sync of the base branch's screwdriver.yaml records.
    Pipeline.objects.filter(pk=pipeline.pk).update(annotations={"screwdriver.cd/restrictPR": value})


def restart(username: str, build: Build) -> Any:
    token = issue_user_token(username=username, is_admin=False)
    return with_bearer(token).post("/v4/events", {"buildId": build.pk}, format="json")


def test_the_webhook_records_who_opened_the_pull_request(pr_build: Build) -> None:
    assert pr_build.event.pr["username"] == "mallory"


def test_a_reader_cannot_restart_a_pr_where_restrict_pr_restricts_it_and_is_told_why(
    pipeline: Pipeline, pr_build: Build
) -> None:
    restrict(pipeline, "fork")
    response = restart("mallory", pr_build)
    assert response.status_code == 403
    assert response.json()["message"] == (
        f"Pipeline {pipeline.pk} restricts pull requests (restrictPR is fork): only people with "
        "push rights may start PR-7 again; ask one of its admins."
    )
    assert Event.objects.count() == 1


@pytest.mark.parametrize("username", ["carol", "octo"])
def test_people_with_push_rights_may_restart_a_restricted_pr(
    pipeline: Pipeline, pr_build: Build, username: str
) -> None:
    restrict(pipeline, "fork")
    response = restart(username, pr_build)
    assert response.status_code == 201, response.content
    event = Event.objects.get(pk=response.json()["id"])
    assert (event.type, event.pr_num, event.parent_event_id) == (
        Event.Type.PR,
        7,
        pr_build.event_id,
    )
    assert [b.job.name for b in event.builds.select_related("job")] == ["PR-7:test"]


def test_a_server_wide_restriction_refuses_a_readers_restart_too(
    pipeline: Pipeline, pr_build: Build, settings: Any
) -> None:
    settings.SD_RESTRICT_PR = "all-admin"
    response = restart("mallory", pr_build)
    assert response.status_code == 403
    assert "(restrictPR is all-admin)" in response.json()["message"]


def test_the_author_may_restart_their_own_pr_without_push_rights_where_nothing_is_restricted(
    pr_build: Build,
) -> None:
    response = restart("mallory", pr_build)
    assert response.status_code == 201, response.content


def test_another_reader_may_not_restart_someone_elses_pr(
    pipeline: Pipeline, pr_build: Build
) -> None:
    response = restart("bob", pr_build)
    assert response.status_code == 403
    assert response.json()["message"] == (
        f"Only the author of PR-7 or people with push rights on pipeline {pipeline.pk} may start "
        "it again; ask one of its admins."
    )


def test_the_ui_refuses_a_readers_restart_of_a_restricted_pr_with_the_reason(
    client: Client, pipeline: Pipeline, pr_build: Build
) -> None:
    restrict(pipeline, "fork")
    client.force_login(User.objects.get(username="mallory"))
    url = f"/pipelines/{pipeline.pk}/events/{pr_build.event_id}/restart"
    response = client.post(url, {"start_from": "PR-7:test", "mode": "inherit"})
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"Pipeline {pipeline.pk} restricts pull requests (restrictPR is fork): only people with "
        "push rights may start PR-7 again; ask one of its admins."
    ]
    assert Event.objects.count() == 1


def test_the_ui_lets_a_pipeline_admin_restart_a_restricted_pr(
    client: Client, pipeline: Pipeline, pr_build: Build
) -> None:
    restrict(pipeline, "fork")
    client.force_login(User.objects.get(username="octo"))
    url = f"/pipelines/{pipeline.pk}/events/{pr_build.event_id}/restart"
    response = client.post(url, {"start_from": "PR-7:test", "mode": "inherit"})
    assert response.status_code == 302
    assert Event.objects.filter(type=Event.Type.PR, parent_event=pr_build.event).count() == 1
