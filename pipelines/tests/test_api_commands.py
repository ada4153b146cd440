"""/v4/commands and /v4/validator/command: publishing, versions, tags, binaries, owners, removal."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from builds.models import Build
from pipelines.models import Command, CommandTag, Event, Pipeline
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml
from screwdriver_site.outputs import outputs
from screwdriver_site.tokens import issue_build_token

pytestmark = pytest.mark.django_db

YAML = "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n    steps:\n      - a: echo a\n"
BINARY = b"#!/bin/sh\necho hello\n"


def spec(version: str = "1.0", form: str = "binary", name: str = "cmd") -> str:
    section = {
        "binary": "binary:\n  file: ./hello.sh\n",
        "docker": "docker:\n  image: alpine:3\n",
        "habitat": "habitat:\n  mode: remote\n  package: core/git\n  command: git\n",
    }[form]
    return (
        f"namespace: ns\nname: {name}\nversion: '{version}'\ndescription: d\n"
        f"maintainer: a@b.example.com\nformat: {form}\n{section}"
    )


def build_client(pipeline: Pipeline, *, pr_num: int | None = None) -> APIClient:
    event = event_from_yaml(pipeline, YAML)
    if pr_num is not None:
        Event.objects.filter(pk=event.pk).update(type=Event.Type.PR, pr_num=pr_num)
    built = Build.objects.filter(event=event).first()
    assert built is not None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_build_token(built)}")
    return client


def publish(client: APIClient, text: str, binary: bytes | None = BINARY) -> Any:
    body: dict[str, object] = {"spec": text}
    if binary is not None:
        body["file"] = SimpleUploadedFile("file", binary)
    return client.post("/v4/commands", body, format="multipart")


@pytest.fixture
def owner_pipeline(owner: User) -> Pipeline:
    return pipeline_from_yaml(YAML, owner=owner, name="local/commands")


def test_a_build_publishes_versions_and_the_binary_streams_back(
    owner_pipeline: Pipeline, admin_client: APIClient
) -> None:
    client = build_client(owner_pipeline)

    versions = [publish(client, spec(v)).json()["version"] for v in ["1.0", "1.0", "1", "2"]]
    first = publish(client, spec("3"))
    binary: Any = admin_client.get("/v4/commands/ns/cmd/1.0/binary")

    assert versions == ["1.0.0", "1.0.1", "1.0.2", "2.0.0"]
    assert first.status_code == 201
    assert first["Location"].endswith("/v4/commands/ns/cmd/3.0.0")
    assert first.json() | {"id": 0, "createTime": ""} == {
        "id": 0,
        "namespace": "ns",
        "name": "cmd",
        "version": "3.0.0",
        "description": "d",
        "maintainer": "a@b.example.com",
        "format": "binary",
        "usage": "",
        "binary": {"file": "./hello.sh"},
        "pipelineId": owner_pipeline.pk,
        "createTime": "",
        "trusted": False,
        "latest": True,
    }
    assert binary.status_code == 200
    assert b"".join(binary.streaming_content) == BINARY
    assert binary["X-Command-Version"] == "1.0.2"
    assert outputs().exists("commands/ns/cmd/1.0.2/hello.sh")


def test_only_the_owner_pipeline_publishes_and_never_from_a_pull_request(
    owner_pipeline: Pipeline, outsider: User
) -> None:
    assert publish(build_client(owner_pipeline), spec()).status_code == 201
    other = pipeline_from_yaml(YAML, owner=outsider, name="local/other")

    stranger = publish(build_client(other), spec())
    pull = publish(build_client(owner_pipeline, pr_num=4), spec())
    fresh_pull = publish(build_client(other, pr_num=5), spec(name="fresh"))

    assert stranger.status_code == 403
    assert "pipeline that first published it" in stranger.json()["message"]
    assert pull.status_code == 403
    assert pull.json()["message"].startswith("A pull request's build cannot publish")
    assert fresh_pull.status_code == 403
    assert Command.objects.count() == 1


def test_people_cannot_publish_and_a_bad_spec_or_file_is_a_400(
    owner_pipeline: Pipeline, admin_client: APIClient
) -> None:
    client = build_client(owner_pipeline)

    person = publish(admin_client, spec())
    invalid = publish(client, "namespace: ns\nname: a/b\nversion: x\nformat: zip\n")
    no_file = publish(client, spec(), binary=None)
    extra_file = publish(client, spec(form="docker"))
    not_yaml = publish(client, "a: [b")

    assert person.status_code == 403
    assert invalid.status_code == 400
    assert [e["path"] for e in invalid.json()["errors"]] == [
        ["name"],
        ["version"],
        ["description"],
        ["maintainer"],
        ["format"],
    ]
    assert (no_file.status_code, no_file.json()["message"]) == (
        400,
        "A binary command needs its file: send it as the `file` part.",
    )
    assert extra_file.status_code == 400
    assert not_yaml.status_code == 400
    assert not_yaml.json()["message"].startswith("The command spec is not valid YAML or JSON")
    assert Command.objects.count() == 0


def test_docker_and_habitat_commands_have_no_binary(
    owner_pipeline: Pipeline, admin_client: APIClient
) -> None:
    client = build_client(owner_pipeline)
    docker = publish(client, spec(form="docker", name="box"), binary=None)
    habitat = publish(client, spec(form="habitat", name="hab"), binary=None)

    missing = admin_client.get("/v4/commands/ns/box/1/binary")

    assert docker.json()["docker"] == {"image": "alpine:3"}
    assert habitat.json()["habitat"]["package"] == "core/git"
    assert missing.status_code == 404
    assert missing.json()["message"] == (
        "Command ns/box@1.0.0 is a docker command: it has no file."
    )


def test_tags_point_at_versions_and_promote_moves_them(
    owner_pipeline: Pipeline, admin_client: APIClient, outsider: User
) -> None:
    client = build_client(owner_pipeline)
    for version in ["1.0", "1.0", "1.1"]:
        publish(client, spec(version))

    tagged = client.put("/v4/commands/ns/cmd/tags/stable", {"version": "1.0.1"}, format="json")
    moved = client.put("/v4/commands/ns/cmd/tags/stable", {"version": "1.0.0"}, format="json")
    bad_tag = client.put("/v4/commands/ns/cmd/tags/1bad", {"version": "1.0.0"}, format="json")
    no_version = client.put("/v4/commands/ns/cmd/tags/beta", {"version": "9.9.9"}, format="json")
    other = pipeline_from_yaml(YAML, owner=outsider, name="local/other")
    stranger = build_client(other).put(
        "/v4/commands/ns/cmd/tags/stable", {"version": "1.1.0"}, format="json"
    )

    assert (tagged.status_code, moved.status_code) == (201, 200)
    assert (bad_tag.status_code, no_version.status_code, stranger.status_code) == (400, 404, 403)
    assert admin_client.get("/v4/commands/ns/cmd/stable").json()["version"] == "1.0.0"
    assert admin_client.get("/v4/commands/ns/cmd/1.0").json()["version"] == "1.0.1"
    assert admin_client.get("/v4/commands/ns/cmd/1").json()["version"] == "1.1.0"
    assert admin_client.get("/v4/commands/ns/cmd/nope").status_code == 404
    assert admin_client.get("/v4/commands/ns/cmd/a@b").status_code == 400
    versions = admin_client.get("/v4/commands/ns/cmd").json()
    assert [v["version"] for v in versions] == ["1.1.0", "1.0.1", "1.0.0"]
    tags = admin_client.get("/v4/commands/ns/cmd/tags").json()
    assert [(t["tag"], t["version"]) for t in tags] == [("stable", "1.0.0")]

    assert client.delete("/v4/commands/ns/cmd/tags/stable").status_code == 204
    assert client.delete("/v4/commands/ns/cmd/tags/stable").status_code == 404
    assert CommandTag.objects.count() == 0


def test_removal_takes_every_version_tag_and_file_and_trust_is_for_admins(
    owner_pipeline: Pipeline, admin_client: APIClient, outsider: User
) -> None:
    client = build_client(owner_pipeline)
    publish(client, spec())
    client.put("/v4/commands/ns/cmd/tags/stable", {"version": "1.0.0"}, format="json")
    stranger = APIClient()
    stranger.force_authenticate(outsider)

    refused = stranger.delete("/v4/commands/ns/cmd")
    untrusted = stranger.put("/v4/commands/ns/cmd/trusted", {"trusted": True}, format="json")
    assert refused.status_code == 403
    assert untrusted.status_code == 403

    removed = client.delete("/v4/commands/ns/cmd")

    assert removed.status_code == 204
    assert (Command.objects.count(), CommandTag.objects.count()) == (0, 0)
    assert not outputs().exists("commands/ns/cmd/1.0.0/hello.sh")
    assert client.delete("/v4/commands/ns/cmd").status_code == 404


def test_the_validator_answers_the_command_and_its_errors(admin_client: APIClient) -> None:
    good = admin_client.post("/v4/validator/command", {"yaml": spec()}, format="json")
    bad = admin_client.post(
        "/v4/validator/command",
        {"yaml": spec().replace("maintainer: a@b.example.com", "maintainer: nobody")},
        format="json",
    )

    assert good.json() == {
        "command": {
            "namespace": "ns",
            "name": "cmd",
            "version": "1.0",
            "description": "d",
            "maintainer": "a@b.example.com",
            "format": "binary",
            "binary": {"file": "./hello.sh"},
        },
        "errors": [],
    }
    assert bad.json()["errors"] == [
        {
            "message": '"maintainer" must be a valid email',
            "path": ["maintainer"],
            "type": "string.email",
        }
    ]


def test_the_list_filters_and_takes_a_fixed_number_of_queries(
    owner_pipeline: Pipeline, admin_client: APIClient
) -> None:
    client = build_client(owner_pipeline)
    for name in ["alpha", "beta", "gamma"]:
        publish(client, spec(name=name))

    with CaptureQueriesContext(connection) as queries:
        rows = admin_client.get("/v4/commands").json()
    searched = admin_client.get("/v4/commands?search=et").json()

    assert sorted(r["name"] for r in rows) == ["alpha", "beta", "gamma"]
    assert [r["name"] for r in searched] == ["beta"]
    assert len(queries) <= 6


def test_the_validator_refuses_a_docker_command_that_is_not_a_string(
    admin_client: APIClient,
) -> None:
    good = spec(form="docker") + "  command: knife\n"
    bad = spec(form="docker") + "  command: [knife]\n"

    answers = [
        admin_client.post("/v4/validator/command", {"yaml": text}, format="json").json()
        for text in (good, bad)
    ]

    assert answers[0]["errors"] == []
    assert answers[0]["command"]["docker"] == {"image": "alpine:3", "command": "knife"}
    assert answers[1]["errors"] == [
        {
            "message": '"docker.command" must be a string',
            "path": ["docker", "command"],
            "type": "string.base",
        }
    ]
