"""The build page offers both a restart (inherits) and a fresh run from its job."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from builds.models import Build
from conftest import GitRepo
from pipelines.models import Event
from pipelines.services import Creator, create_pipeline, start_event

pytestmark = pytest.mark.django_db

CONFIG = """
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - test: echo test
"""


def test_the_build_page_restarts_its_job_or_starts_it_fresh_at_the_branch_head(
    client: Client, make_repo: Callable[..., GitRepo], settings: object
) -> None:
    settings.SD_API_URL = "http://127.0.0.1:9"  # type: ignore[attr-defined]
    alice = User.objects.create_user("alice")
    repo = make_repo({"screwdriver.yaml": CONFIG})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=alice)
    first = start_event(
        pipeline=pipeline,
        start_from="~commit",
        creator=Creator("Alice", "alice"),
        meta={"kept": "yes"},
    )
    build = Build.objects.get(event=first)
    client.force_login(alice)

    page = client.get(reverse("builds:detail", args=[pipeline.pk, build.pk])).content.decode()
    restart = reverse("pipelines:event-restart", args=[pipeline.pk, first.pk])
    assert page.count(f'action="{restart}"') == 2
    assert 'name="mode" value="inherit"' in page and 'name="mode" value="fresh"' in page
    assert "Start fresh from here" in page

    head = repo.push({"README.md": "newer"})
    client.post(restart, {"start_from": "main", "mode": "fresh"})
    fresh = Event.objects.exclude(pk=first.pk).get()
    assert (fresh.parent_event_id, fresh.sha, fresh.meta) == (None, head, {})
    client.post(restart, {"start_from": "main", "mode": "inherit"})
    again = Event.objects.order_by("-pk").first()
    assert again is not None
    assert (again.parent_event_id, again.sha, again.meta["kept"]) == (first.pk, first.sha, "yes")


def test_the_pipeline_pages_restart_form_offers_both_modes_as_radio_buttons(
    client: Client, make_repo: Callable[..., GitRepo], settings: object
) -> None:
    settings.SD_API_URL = "http://127.0.0.1:9"  # type: ignore[attr-defined]
    alice = User.objects.create_user("alice")
    pipeline = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": CONFIG}).checkout_url, user=alice
    )
    start_event(pipeline=pipeline, start_from="~commit", creator=Creator("Alice", "alice"))
    client.force_login(alice)

    page = client.get(reverse("pipelines:detail", args=[pipeline.pk])).content.decode()

    form = page[
        page.index('class="restart-form"') : page.index("</form>", page.index("restart-form"))
    ]
    assert '<option value="inherit"' not in form
    assert 'type="radio" name="mode" value="inherit"' in form and "checked" in form
    assert 'type="radio" name="mode" value="fresh"' in form
    assert "Latest commit, fresh event" in form
