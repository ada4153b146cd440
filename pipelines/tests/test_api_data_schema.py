"""Every object the API returns passes Screwdriver's data-schema `get` model (npm package)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from conftest import GitRepo, verdicts
from pipelines.config.command_spec import parse_spec
from pipelines.services import (
    Publisher,
    create_secret,
    publish_command,
    publish_pipeline_template,
    publish_template,
    tag_command,
    tag_pipeline_template,
    tag_template,
)
from pipelines.tests.api_fixtures import CHAIN, SECRET_VALUE, make_world, with_bearer
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml
from screwdriver_site.api.tokens import issue_user_token

pytestmark = [pytest.mark.oracle, pytest.mark.django_db]


def test_every_object_the_api_returns_passes_screwdrivers_get_models(
    data_schema: Path, make_repo: Callable[..., GitRepo]
) -> None:
    owner = User.objects.create_user(username="alice", first_name="Alice")
    world = make_world(owner, make_repo({"screwdriver.yaml": CHAIN}))
    create_secret(pipeline=world.pipeline, name="DEPLOY_KEY", value=SECRET_VALUE, allow_in_pr=False)
    client = with_bearer(issue_user_token(username="alice", is_admin=False))
    p, b, j = world.pipeline.pk, world.build.pk, world.build.job_id
    done = world.done.pk

    def get(url: str) -> Any:
        response = client.get(url)
        assert response.status_code == 200, (url, response.content)
        return response.json()

    def post(url: str, body: dict[str, Any]) -> Any:
        response = client.post(url, body, format="json")
        assert response.status_code == 201, (url, response.content)
        return response.json()

    user_token = post("/v4/tokens", {"name": "laptop", "description": "mine"})
    pipeline_token = post(f"/v4/pipelines/{p}/tokens", {"name": "deploy"})
    secret = get(f"/v4/pipelines/{p}/secrets")[0]
    items: list[tuple[str, Any]] = [
        ("pipeline", get(f"/v4/pipelines/{p}")),
        *[("pipeline", x) for x in get("/v4/pipelines")],
        *[("job", x) for x in get(f"/v4/pipelines/{p}/jobs")],
        ("job", get(f"/v4/jobs/{j}")),
        *[("event", x) for x in get(f"/v4/pipelines/{p}/events")],
        ("event", get(f"/v4/events/{done}")),
        ("build", get(f"/v4/builds/{b}")),
        *[("build", x) for x in get(f"/v4/events/{done}/builds")],
        *[("build", x) for x in get(f"/v4/jobs/{j}/builds")],
        *[("build", x) for x in get(f"/v4/pipelines/{p}/builds")],
        ("build", get(f"/v4/jobs/{j}/latestBuild")),
        ("build", get(f"/v4/pipelines/{p}/latestBuild")),
        *[("step", x) for x in get(f"/v4/builds/{b}/steps")],
        *[("step", x) for x in get(f"/v4/events/{done}/builds")[0]["steps"]],
        ("step", get(f"/v4/builds/{b}/steps/hello")),
        ("secret", secret),
        ("secret", get(f"/v4/secrets/{secret['id']}")),
        *[("secret", x) for x in get(f"/v4/builds/{b}/secrets")],
        ("token", user_token),
        *[("token", x) for x in get("/v4/tokens")],
        ("token", pipeline_token),
        *[("token", x) for x in get(f"/v4/pipelines/{p}/tokens")],
    ]
    kinds = {model for model, _ in items}
    assert kinds == {"pipeline", "job", "event", "build", "step", "secret", "token"}

    failures = [
        (model, message, obj)
        for (model, obj), message in zip(items, verdicts(data_schema, items), strict=True)
        if message is not None
    ]

    assert failures == []


def test_the_oracle_refuses_what_screwdriver_would_refuse(data_schema: Path) -> None:
    # Guards the harness itself: a broken object must be reported, not waved through.
    verdict = verdicts(data_schema, [("build", {"id": "x"}), ("step", {"name": "ok"})])

    assert verdict[0] is not None and verdict[1] is None


def test_published_templates_and_their_tags_pass_screwdrivers_models(
    data_schema: Path, owner: User
) -> None:
    publisher = Publisher(pipeline=pipeline_from_yaml("jobs: {}", owner=owner), is_pr=False)
    publish_template(
        publisher=publisher,
        text="namespace: ns\nname: tpl\nversion: '1.2'\ndescription: d\nmaintainer: a@example.com\n"
        "images:\n  lts: node:lts\nconfig:\n  image: lts\n  steps:\n    - a: echo a\n"
        "  environment:\n    FOO: bar\n",
    )
    tag_template(publisher=publisher, namespace="ns", name="tpl", tag="stable", version="1.2.0")
    client = with_bearer(issue_user_token(username=owner.username, is_admin=False))

    def get(url: str) -> Any:
        response = client.get(url, REQUEST_URI=url)
        assert response.status_code == 200, (url, response.content)
        return response.json()

    used = pipeline_from_yaml(
        "jobs:\n  main: {template: ns/tpl@stable, requires: [~commit]}\n",
        owner=owner,
        name="local/uses",
    )
    event_from_yaml(used, "jobs:\n  main: {template: ns/tpl@stable, requires: [~commit]}\n")
    pipeline_from_yaml(
        "jobs:\n  main: {template: ns/tpl@stable, requires: [~commit]}\n",
        owner=owner,
        name="local/idle",
    )
    usage = get("/v4/templates/ns%2Ftpl/stable/usage/pipelines")
    items: list[tuple[str, Any]] = [
        *[("template", x) for x in get("/v4/templates")],
        *[("template", x) for x in get("/v4/templates/ns%2Ftpl")],
        ("template", get("/v4/templates/ns%2Ftpl/stable")),
        *[("templateTag", x) for x in get("/v4/templates/ns%2Ftpl/tags")],
        *[("template", x) for x in get("/v4/templates/ns%2Ftpl/metrics")],
        ("api.pipelineUsage.get", usage),
    ]

    # One pipeline that ran and one that never did (`lastRun: null`).
    assert [p["lastRun"] is None for p in usage] == [False, True]
    assert len(items) == 6
    assert verdicts(data_schema, items) == [None] * 6
    # The oracle does look at the report: a pipeline without admins is refused.
    assert verdicts(data_schema, [("api.pipelineUsage.get", [{**usage[0], "admins": None}])]) != [
        None
    ]


def test_published_commands_and_their_tags_pass_screwdrivers_models(
    data_schema: Path, owner: User
) -> None:
    publisher = Publisher(pipeline=pipeline_from_yaml("jobs: {}", owner=owner), is_pr=False)
    head = "namespace: ns\nversion: '1.2'\ndescription: d\nmaintainer: a@example.com\n"
    publish_command(
        publisher=publisher,
        spec=parse_spec(f"{head}name: bin\nformat: binary\nbinary:\n  file: ./run.sh\n"),
        binary=io.BytesIO(b"#!/bin/sh\necho hi\n"),
    )
    publish_command(
        publisher=publisher,
        spec=parse_spec(f"{head}name: box\nformat: docker\ndocker:\n  image: alpine:3\n"),
        binary=None,
    )
    publish_command(
        publisher=publisher,
        spec=parse_spec(
            f"{head}name: hab\nformat: habitat\nhabitat:\n  mode: remote\n"
            "  package: core/git\n  command: git\n"
        ),
        binary=None,
    )
    tag_command(publisher=publisher, namespace="ns", name="bin", tag="stable", version="1.2.0")
    client = with_bearer(issue_user_token(username=owner.username, is_admin=False))

    def get(url: str) -> Any:
        response = client.get(url)
        assert response.status_code == 200, (url, response.content)
        return response.json()

    items: list[tuple[str, Any]] = [
        *[("command", x) for x in get("/v4/commands")],
        *[("command", x) for x in get("/v4/commands/ns/bin")],
        ("command", get("/v4/commands/ns/bin/stable")),
        *[("commandTag", x) for x in get("/v4/commands/ns/bin/tags")],
    ]

    assert len(items) == 6
    assert verdicts(data_schema, items) == [None] * 6


def test_published_pipeline_templates_pass_screwdrivers_models(
    data_schema: Path, owner: User
) -> None:
    publisher = Publisher(pipeline=pipeline_from_yaml("jobs: {}", owner=owner), is_pr=False)
    version = publish_pipeline_template(
        publisher=publisher,
        text="namespace: acme\nname: node\nversion: '1.2'\ndescription: d\n"
        "maintainer: a@example.com\nconfig:\n  shared: {image: node:20}\n  jobs:\n"
        "    main:\n      requires: [~commit]\n      steps:\n        - a: echo a\n",
    )
    tag_pipeline_template(
        publisher=publisher, namespace="acme", name="node", tag="stable", version="1.2.0"
    )
    client = with_bearer(issue_user_token(username=owner.username, is_admin=False))

    def get(url: str) -> Any:
        response = client.get(url)
        assert response.status_code == 200, (url, response.content)
        return response.json()

    base = "/v4/pipeline/template/acme/node"
    lists = "/v4/pipeline/templates/acme/node"  # Screwdriver lists versions and tags in plural
    items: list[tuple[str, Any]] = [
        *[("templateMeta", x) for x in get("/v4/pipeline/templates")],
        ("templateMeta", get(base)),
        ("templateMeta", get(f"/v4/pipeline/template/{version.template_id}")),
        *[("pipelineTemplateVersions", x) for x in get(f"{lists}/versions")],
        ("pipelineTemplateVersions", get(f"{base}/stable")),
        *[("templateTag", x) for x in get(f"{lists}/tags")],
    ]

    assert len(items) == 6
    assert verdicts(data_schema, items) == [None] * 6
