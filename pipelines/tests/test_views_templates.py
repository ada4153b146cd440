"""The templates pages: the list, one template's versions, tags and the pipelines using it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from pipelines.models import Job, Pipeline, Template, TemplateTag
from pipelines.tests.factories import pipeline_from_yaml

pytestmark = pytest.mark.django_db

YAML = "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n    steps:\n      - a: echo a\n"


def publish(pipeline: Pipeline, name: str, version: str, **fields: object) -> Template:
    return Template.objects.create(
        namespace="ns",
        name=name,
        version=version,
        pipeline=pipeline,
        description="<b>bold</b>",
        config={"image": "alpine", "steps": [{"greet": "echo hi"}]},
        **fields,
    )


def test_the_list_shows_each_template_once_escaped_in_few_queries(
    admin_client: Client, owner: User
) -> None:
    pipeline = pipeline_from_yaml(YAML, owner=owner)
    for name in ["tpl", "other", "third"]:
        publish(pipeline, name, "1.0.0")
        publish(pipeline, name, "1.1.0", latest=True)

    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get("/templates")

    html = page.content.decode()
    assert page.status_code == 200
    assert html.count("&lt;b&gt;bold&lt;/b&gt;") == 3 and "<b>bold</b>" not in html
    assert html.index("ns/other") < html.index("ns/third") < html.index("ns/tpl")
    assert 'href="/templates"' in html  # the nav links here
    assert len(queries) <= 6


def test_a_template_page_shows_versions_tags_and_only_pipelines_you_can_see(
    member_client: Client, owner: User
) -> None:
    mine = pipeline_from_yaml(YAML, owner=owner, name="local/mine")
    hidden = pipeline_from_yaml(YAML, owner=owner, name="local/hidden", private=True)
    old = publish(mine, "tpl", "1.0.0")
    new = publish(mine, "tpl", "1.1.0", latest=True)
    TemplateTag.objects.create(namespace="ns", name="tpl", tag="stable", version="1.0.0")
    for pipeline, template in [(mine, old), (hidden, new)]:
        Job.objects.filter(pipeline=pipeline).update(
            permutations=[{"image": "alpine", "templateId": template.pk}]
        )
    with CaptureQueriesContext(connection) as queries:
        page = member_client.get("/templates/ns/tpl")

    html = page.content.decode()
    assert page.status_code == 200
    assert html.index("1.1.0") < html.index("1.0.0")
    assert "stable" in html and "ns/tpl@1.1.0" in html
    assert "local/mine" in html and "local/hidden" not in html
    assert len(queries) <= 10
    assert member_client.get("/templates/ns/none").status_code == 404
