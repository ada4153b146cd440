"""The pipeline templates pages: the list, one template's versions, tags, trust and users."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from pipelines.models import Job, Pipeline, PipelineTemplate, PipelineTemplateTag
from pipelines.tests.factories import pipeline_from_yaml

pytestmark = pytest.mark.django_db

YAML = "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n    steps:\n      - a: echo a\n"
HOSTILE = '<img src=x onerror="alert(1)">'


def publish(pipeline: Pipeline | None, name: str, *versions: str) -> PipelineTemplate:
    template = PipelineTemplate.objects.create(
        namespace="acme",
        name=name,
        pipeline=pipeline,
        maintainer="<b>maintainer</b>",
        latest_version=versions[-1],
    )
    for version in versions:
        template.versions.create(
            version=version,
            description=f"<script>alert('{version}')</script>",
            config={"jobs": {"test": {}, "<i>publish</i>": {}}},
        )
    return template


def uses(pipeline: Pipeline, template: PipelineTemplate, version: str) -> None:
    environment = {
        "SD_PIPELINE_TEMPLATE_FULLNAME": f"{template.namespace}/{template.name}",
        "SD_PIPELINE_TEMPLATE_VERSION": version,
    }
    Job.objects.filter(pipeline=pipeline).update(
        permutations=[{"image": "alpine", "environment": environment}]
    )


def test_the_list_shows_each_template_with_its_trust_escaped_in_few_queries(
    admin_client: Client, owner: User
) -> None:
    pipeline = pipeline_from_yaml(YAML, owner=owner)
    publish(pipeline, "node", "1.0.0", "1.1.0")
    hostile = publish(pipeline, HOSTILE, "2.0.0")
    PipelineTemplate.objects.filter(pk=hostile.pk).update(trusted_since_version="2.0.0")

    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get("/pipeline-templates")

    html = page.content.decode()
    assert page.status_code == 200
    assert "<img" not in html and "<script>" not in html and "<b>maintainer" not in html
    assert "acme/&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "&lt;script&gt;alert(&#x27;1.1.0&#x27;)&lt;/script&gt;" in html  # the latest's
    assert html.count('<span class="badge" title="since 2.0.0">trusted</span>') == 1
    # Django's reverse() leaves = ( ) as they are: harmless inside a quoted attribute.
    link = quote(HOSTILE, safe="=()")
    assert f'href="/pipeline-templates/acme/{link}"' in html
    assert 'href="/pipeline-templates"' in html  # the nav links here
    assert len(queries) <= 6


def test_a_template_page_shows_versions_tags_trust_and_only_pipelines_you_can_see(
    member_client: Client, owner: User
) -> None:
    mine = pipeline_from_yaml(YAML, owner=owner, name="local/mine")
    hidden = pipeline_from_yaml(YAML, owner=owner, name="local/hidden", private=True)
    template = publish(mine, HOSTILE, "1.0.0", "1.1.0", "1.10.0")
    PipelineTemplate.objects.filter(pk=template.pk).update(trusted_since_version="1.1.0")
    PipelineTemplateTag.objects.create(template=template, tag="stable", version="1.0.0")
    uses(mine, template, "1.0.0")
    uses(hidden, template, "1.10.0")

    with CaptureQueriesContext(connection) as queries:
        page = member_client.get(f"/pipeline-templates/acme/{quote(HOSTILE)}")

    html = page.content.decode()
    assert page.status_code == 200
    assert "<img" not in html and "<script>" not in html and "<i>publish" not in html
    assert "<title>acme/&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    # Highest first, by version numbers and not as text.
    assert html.index("1.10.0") < html.index("1.1.0") < html.index("1.0.0")
    assert "trusted since 1.1.0" in html
    versions = html[html.index('id="pipeline-template-versions"') :]
    rows = versions.split("<tr>")[2:]
    assert ['<span class="badge">trusted</span>' in row for row in rows] == [True, True, False]
    assert "stable" in html
    assert "local/mine" in html and "@1.0.0" in html and "local/hidden" not in html
    assert 'id="pipeline-template-trust-form"' not in html  # not a server admin
    assert len(queries) <= 10
    assert member_client.get("/pipeline-templates/acme/none").status_code == 404


def test_a_server_admin_marks_a_template_trusted_on_its_page_and_no_one_else_may(
    member_client: Client, owner: User
) -> None:
    template = publish(pipeline_from_yaml(YAML, owner=owner), "node", "1.0.0", "1.2.0")
    url = "/pipeline-templates/acme/node/trusted"

    refused = member_client.post(url, {"trusted": "true"})
    root = Client()
    root.force_login(User.objects.create_superuser(username="root"))
    page = root.get("/pipeline-templates/acme/node").content.decode()
    marked = root.post(url, {"trusted": "true"})

    assert refused.status_code == 403
    assert 'id="pipeline-template-trust-form"' in page and "Mark trusted" in page
    assert marked.status_code == 302 and marked["Location"] == "/pipeline-templates/acme/node"
    template.refresh_from_db()
    assert template.trusted_since_version == "1.2.0"
    assert "Trust no more" in root.get("/pipeline-templates/acme/node").content.decode()
    assert root.post(url, {"trusted": "false"}).status_code == 302
    template.refresh_from_db()
    assert template.trusted_since_version == ""
    assert root.get(url).status_code == 405
    assert (
        root.post("/pipeline-templates/acme/none/trusted", {"trusted": "true"}).status_code == 404
    )
