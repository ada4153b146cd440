"""Secret values are write-only: they appear in no API response, server log or page.

Only a build's own launcher receives them (the launch spec and /v4/builds/{id}/secrets with
its build token); masking in build logs is proven in builds/tests/test_end_to_end.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from conftest import GitRepo
from pipelines.services import create_pipeline_token
from pipelines.tests.api_fixtures import CHAIN, SECRET_VALUE, make_world, with_bearer
from screwdriver_site.api.tokens import issue_user_token
from screwdriver_site.tokens import issue_build_token

pytestmark = pytest.mark.django_db

KWARGS = ("pipeline_id", "build_id", "event_id", "job_id", "secret_id", "name", "job_name")


def get_urls(ids: dict[str, Any]) -> list[str]:
    """Every GET-able URL of the site (API and UI) whose parameters we can fill in."""
    values = {
        "pipeline_id": ids["pipeline"],
        "build_id": ids["build"],
        "event_id": ids["event"],
        "job_id": ids["job"],
        "secret_id": ids["secret"],
        "name": "hello",
        "job_name": "main",
    }
    urls: list[str] = []

    def walk(patterns: list[Any], namespace: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                ns = ":".join(x for x in (namespace, entry.namespace or "") if x)
                walk(entry.url_patterns, ns)
            elif isinstance(entry, URLPattern) and entry.name:
                wanted = set(entry.pattern.converters)
                if not wanted <= set(KWARGS) or "admin" in namespace:
                    continue
                # Regex routes (allauth's) capture what no converter names: nothing to fill in.
                if entry.pattern.regex.groups > len(wanted):
                    continue
                name = f"{namespace}:{entry.name}" if namespace else entry.name
                urls.append(reverse(name, kwargs={k: values[k] for k in wanted}))

    walk(get_resolver().url_patterns, "")
    return sorted(set(urls))


def body_of(response: Any) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return bytes(response.content)


def test_secret_values_appear_in_no_response_log_or_page(
    make_repo: Callable[..., GitRepo], settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.SD_API_URL = "http://127.0.0.1:9"
    caplog.set_level(logging.DEBUG)
    owner = User.objects.create_superuser(username="alice")
    world = make_world(owner, make_repo({"screwdriver.yaml": CHAIN}))
    api = with_bearer(issue_user_token(username="alice", is_admin=True))
    p = world.pipeline.pk
    created = api.post(
        "/v4/secrets",
        {"pipelineId": p, "name": "DEPLOY_KEY", "value": SECRET_VALUE},
        format="json",
    )
    assert created.status_code == 201
    secret_id = created.json()["id"]
    updated = api.put(f"/v4/secrets/{secret_id}", {"value": SECRET_VALUE}, format="json")
    ids = {**world.ids(), "secret": secret_id}
    pipeline_api = with_bearer(create_pipeline_token(pipeline=world.pipeline, name="t").value)
    ui = Client()
    ui.force_login(owner)
    seen: list[Any] = [created, updated]
    urls = get_urls(ids)
    assert len(urls) > 30
    for url in urls:
        clients = [api, pipeline_api] if url.startswith("/v4/") else [ui]
        seen += [client.get(url) for client in clients]

    assert sum(r.status_code == 200 for r in seen) > 40
    for response in seen:
        assert SECRET_VALUE.encode() not in body_of(response), response.wsgi_request.path
    assert SECRET_VALUE not in caplog.text


def test_only_the_builds_own_token_receives_the_value(make_repo: Callable[..., GitRepo]) -> None:
    owner = User.objects.create_superuser(username="alice")
    world = make_world(owner, make_repo({"screwdriver.yaml": CHAIN}))
    api = with_bearer(issue_user_token(username="alice", is_admin=True))
    api.post(
        "/v4/secrets",
        {"pipelineId": world.pipeline.pk, "name": "DEPLOY_KEY", "value": SECRET_VALUE},
        format="json",
    )
    url = f"/v4/builds/{world.build.pk}/secrets"

    as_person = api.get(url).json()
    as_build = with_bearer(issue_build_token(world.build)).get(url).json()

    assert [s["name"] for s in as_person] == ["DEPLOY_KEY"] and "value" not in as_person[0]
    assert as_build[0]["value"] == SECRET_VALUE
