"""The commands pages: the list, one command's versions, formats and tags."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from pipelines.models import Command, CommandTag, Pipeline
from pipelines.tests.factories import pipeline_from_yaml

pytestmark = pytest.mark.django_db

YAML = "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n    steps:\n      - a: echo a\n"


def publish(pipeline: Pipeline, name: str, version: str, **fields: object) -> Command:
    values: dict[str, object] = {
        "format": "binary",
        "spec": {"file": "run.sh"},
        "binary_name": f"commands/ns/{name}/{version}/run.sh",
        "binary_size": 2048,
        **fields,
    }
    return Command.objects.create(
        namespace="ns",
        name=name,
        version=version,
        pipeline=pipeline,
        description="<b>bold</b>",
        **values,
    )


def test_the_list_shows_each_command_once_escaped_in_few_queries(
    admin_client: Client, owner: User
) -> None:
    pipeline = pipeline_from_yaml(YAML, owner=owner)
    for name in ["cmd", "other", "third"]:
        publish(pipeline, name, "1.0.0")
        publish(pipeline, name, "1.1.0", latest=True)

    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get("/commands")

    text = page.content.decode()
    assert page.status_code == 200
    assert text.count('href="/commands/ns/') == 3
    assert "&lt;b&gt;bold&lt;/b&gt;" in text and "<b>bold</b>" not in text
    assert len(queries) <= 8


def test_one_command_shows_its_versions_formats_and_tags(admin_client: Client, owner: User) -> None:
    pipeline = pipeline_from_yaml(YAML, owner=owner)
    publish(pipeline, "cmd", "1.0.0")
    publish(pipeline, "cmd", "2.0.0", latest=True, format="docker", spec={"image": "alpine:3"})
    CommandTag.objects.create(namespace="ns", name="cmd", tag="stable", version="1.0.0")

    page = admin_client.get("/commands/ns/cmd")
    missing = admin_client.get("/commands/ns/nope")

    text = page.content.decode()
    assert page.status_code == 200
    assert "sd-cmd exec ns/cmd@2.0.0" in text
    assert "<code>alpine:3</code>" in text
    assert "2.0\xa0KB" in text
    assert "<td>stable</td><td>1.0.0</td>" in text
    assert missing.status_code == 404


def test_the_pages_ask_for_a_sign_in(client: Client) -> None:
    assert client.get("/commands").status_code == 302
