"""Commit statuses on GitHub: each build status change is posted after commit, by a task."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx
from django.contrib.auth import get_user_model
from django_q.conf import Conf

from builds import outbox
from builds import services as build_services
from builds.models import Build, BuildStatus
from pipelines.services import Creator, create_pipeline, start_event
from scm.tests.github_fakes import CONFIG, HEAD_SHA, SECRET, fake_github
from scm.tests.scm_people import repository_admin

pytestmark = pytest.mark.django_db
STATUSES = "https://api.github.com/repos/Codertocat/Hello-World/statuses/" + HEAD_SHA


@pytest.fixture
def github(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[respx.Router]:
    """GitHub's API at the HTTP boundary; django-q2 runs tasks in-line (its sync mode)."""
    settings.SD_GITHUB_WEBHOOK_SECRET = SECRET
    settings.SD_GITHUB_TOKEN = "server-token"
    settings.SD_GITHUB_API_URL = "https://api.github.com"
    settings.SD_UI_URL = "https://sd.example.com"
    monkeypatch.setattr(Conf, "SYNC", True)
    with respx.mock(assert_all_called=False) as router:
        fake_github(router, ("Codertocat/Hello-World",))
        router.post(STATUSES).mock(return_value=httpx.Response(201, json={}))
        yield router


def posted(router: respx.Router) -> list[dict[str, Any]]:
    return [
        json.loads(call.request.content)
        for call in router.calls
        if str(call.request.url) == STATUSES
    ]


def test_each_status_change_of_a_github_build_is_posted_to_its_commit(
    github: respx.Router, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    user = repository_admin("octo")
    pipeline = create_pipeline(
        checkout_url="https://github.com/Codertocat/Hello-World.git#master", user=user
    )
    event = start_event(
        pipeline=pipeline, start_from="~commit", creator=Creator(name="o", username="o")
    )
    build = Build.objects.get(event=event)
    with django_capture_on_commit_callbacks(execute=True):
        build_services.mark_running(build_id=build.pk)
    with django_capture_on_commit_callbacks(execute=True):
        build_services.finish_build(build_id=build.pk, status=BuildStatus.SUCCESS)
    bodies = posted(github)
    assert [body["state"] for body in bodies] == ["pending", "success"]
    assert {body["context"] for body in bodies} == {f"Screwdriver/{pipeline.pk}/main"}
    assert bodies[0]["target_url"] == (
        f"https://sd.example.com/pipelines/{pipeline.pk}/builds/{build.pk}"
    )


def test_a_refused_status_never_fails_the_transition(
    github: respx.Router, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    github.post(STATUSES).mock(return_value=httpx.Response(500))
    user = repository_admin("octo")
    pipeline = create_pipeline(
        checkout_url="https://github.com/Codertocat/Hello-World.git#master", user=user
    )
    event = start_event(
        pipeline=pipeline, start_from="~commit", creator=Creator(name="o", username="o")
    )
    build = Build.objects.get(event=event)
    with django_capture_on_commit_callbacks(execute=True):
        build_services.abort_build(build_id=build.pk, message="stop")
    build.refresh_from_db()
    assert build.status == BuildStatus.ABORTED
    assert len(posted(github)) == 1


def test_local_pipelines_post_no_status(
    github: respx.Router,
    django_capture_on_commit_callbacks: Callable[..., Any],
    make_repo: Any,
) -> None:
    repo = make_repo({"screwdriver.yaml": CONFIG.decode()})
    user = get_user_model().objects.create_user("octo")
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=user)
    event = start_event(
        pipeline=pipeline, start_from="~commit", creator=Creator(name="o", username="o")
    )
    build = Build.objects.filter(event=event).first()
    assert build is not None
    with django_capture_on_commit_callbacks(execute=True):
        build_services.mark_running(build_id=build.pk)
    assert posted(github) == []


def test_a_queued_build_is_posted_as_pending_before_any_worker_runs_it(
    github: respx.Router, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    user = repository_admin("octo")
    pipeline = create_pipeline(
        checkout_url="https://github.com/Codertocat/Hello-World.git#master", user=user
    )
    with django_capture_on_commit_callbacks():
        event = start_event(
            pipeline=pipeline, start_from="~commit", creator=Creator(name="o", username="o")
        )
    # What the outbox's worker does after the commit; no worker starts the build meanwhile.
    outbox.dispatch()
    build = Build.objects.get(event=event)
    assert build.status == BuildStatus.QUEUED
    bodies = posted(github)
    assert [(body["state"], body["description"]) for body in bodies] == [
        ("pending", "The build is queued.")
    ]
    assert bodies[0]["context"] == f"Screwdriver/{pipeline.pk}/main"
