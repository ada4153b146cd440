"""The build page shows the test results a build's meta reports and the notices it sent or not."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from builds import outbox
from builds import services as build_services
from builds.models import Build, BuildStatus
from notifications.tests.mail_servers import Inbox
from pipelines.tests.factories import ESCAPED, XSS, event_from_yaml, pipeline_from_yaml

pytestmark = pytest.mark.django_db

YAML = """
jobs:
  main:
    image: node:18
    requires: [~commit]
    settings:
      email: [dev@example.com]
      slack: builds
    steps:
      - test: make test
"""


def finished_build(
    owner: User, meta: dict[str, Any], status: str = BuildStatus.FAILURE, name: str = "local/app"
) -> Build:
    pipeline = pipeline_from_yaml(YAML, owner=owner, name=name)
    build = Build.objects.get(event=event_from_yaml(pipeline, YAML))
    build_services.mark_running(build_id=build.pk)
    build_services.finish_build(build_id=build.pk, status=status, meta=meta)
    outbox.dispatch()
    return build


def page(client: Client, build: Build) -> str:
    response = client.get(f"/pipelines/{build.job.pipeline_id}/builds/{build.pk}")
    assert response.status_code == 200
    return response.content.decode()


def test_the_page_shows_sent_notices_and_says_why_others_were_not_sent(
    owner: User, admin_client: Client, smtp: Inbox, settings: Any
) -> None:
    settings.SD_SLACK_TOKEN = ""
    build = finished_build(owner, {})

    html = page(admin_client, build)
    assert 'id="notices"' in html
    assert "<code>dev@example.com</code>" in html and ">sent</span>" in html
    assert "Slack <code>builds</code>" in html and ">not sent</span>" in html
    assert "its operator has not set SD_SLACK_TOKEN" in html


def test_the_page_shows_coverage_and_results_escaped_and_links_only_artifacts(
    owner: User, admin_client: Client, settings: Any
) -> None:
    settings.SD_SMTP_HOST = ""
    build = finished_build(
        owner,
        {
            "tests": {
                "coverage": XSS,
                "coverageUrl": "javascript:alert(1)",
                "results": "10/12",
                "resultsUrl": "/test/report one.html",
            }
        },
        BuildStatus.SUCCESS,
    )

    html = page(admin_client, build)
    assert 'id="test-results"' in html
    assert XSS not in html and ESCAPED in html
    assert "javascript:" not in html
    assert f'<a href="/v4/builds/{build.pk}/artifacts/test/report%20one.html">10/12</a>' in html
    # A success that follows nothing sends nothing: no notices section.
    assert 'id="notices"' not in html


def test_a_number_is_shown_as_a_percentage_and_nothing_shows_without_meta(
    owner: User, admin_client: Client, settings: Any
) -> None:
    settings.SD_SMTP_HOST = ""
    build = finished_build(owner, {"tests": {"coverage": 85.5}}, BuildStatus.SUCCESS)
    assert "<dd>85.5%</dd>" in page(admin_client, build)

    quiet = finished_build(owner, {"tests": "all good"}, BuildStatus.SUCCESS, name="local/other")
    assert 'id="test-results"' not in page(admin_client, quiet)
