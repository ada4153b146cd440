"""/v4/pipeline/template(s): publishing, versions, tags, owners, removal and use in a file."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from builds.models import Build
from pipelines.config import parse_pipeline_yaml
from pipelines.models import Event, Pipeline, PipelineTemplate, PipelineTemplateVersion
from pipelines.template_store import database_pipeline_templates, database_templates
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml
from screwdriver_site.tokens import issue_build_token

pytestmark = pytest.mark.django_db

YAML = "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n    steps:\n      - a: echo a\n"


def sd_template(version: str = "1.0", step: str = "npm test") -> str:
    return (
        f"namespace: acme\nname: node\nversion: '{version}'\ndescription: Node pipeline\n"
        "maintainer: a@b.example.com\nconfig:\n  shared:\n    image: node:20\n"
        "  jobs:\n    test:\n      requires: [~commit]\n"
        f"      steps:\n        - test: {step}\n"
        "    publish:\n      requires: [test]\n      steps:\n        - publish: npm publish\n"
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


@pytest.fixture
def owner_pipeline(owner: User) -> Pipeline:
    return pipeline_from_yaml(YAML, owner=owner, name="local/pipeline-templates")


def publish(client: APIClient, version: str = "1.0", step: str = "npm test") -> dict[str, object]:
    response = client.post(
        "/v4/pipeline/template", {"yaml": sd_template(version, step)}, format="json"
    )
    assert response.status_code == 201, response.json()
    return dict(response.json())


def test_a_build_publishes_versions_and_the_store_keeps_shared_laid_into_the_jobs(
    owner_pipeline: Pipeline,
) -> None:
    client = build_client(owner_pipeline)

    versions = [publish(client, v)["version"] for v in ["1.0", "1.0", "1", "2", "1.0"]]

    assert versions == ["1.0.0", "1.0.1", "1.0.2", "2.0.0", "1.0.3"]
    template = PipelineTemplate.objects.get()
    assert (template.namespace, template.name, template.latest_version) == ("acme", "node", "2.0.0")
    assert template.pipeline == owner_pipeline
    stored = PipelineTemplateVersion.objects.get(version="2.0.0")
    assert stored.config["jobs"]["test"]["image"] == "node:20"
    assert "shared" not in stored.config
    assert stored.workflow_graph["edges"] == [
        {"src": "~commit", "dest": "test"},
        {"src": "test", "dest": "publish", "join": True},
    ]
    first = client.post("/v4/pipeline/template", {"yaml": sd_template("3")}, format="json")
    assert first["Location"].endswith(f"/v4/pipeline/template/{template.pk}")
    assert set(first.json()) == {
        "id",
        "templateId",
        "description",
        "version",
        "config",
        "createTime",
        "workflowGraph",
    }


def test_only_the_owner_pipelines_builds_publish_and_never_from_a_pull_request(
    owner_pipeline: Pipeline, outsider: User, admin_client: APIClient
) -> None:
    publish(build_client(owner_pipeline))
    other = pipeline_from_yaml(YAML, owner=outsider, name="local/other")

    stranger = build_client(other).post(
        "/v4/pipeline/template", {"yaml": sd_template()}, format="json"
    )
    pull = build_client(owner_pipeline, pr_num=3).post(
        "/v4/pipeline/template", {"yaml": sd_template()}, format="json"
    )
    person = admin_client.post("/v4/pipeline/template", {"yaml": sd_template()}, format="json")

    assert stranger.status_code == 403
    assert "pipeline that first published it" in stranger.json()["message"]
    assert pull.status_code == 403
    assert pull.json()["message"].startswith("A pull request's build cannot publish")
    assert person.status_code == 403
    assert PipelineTemplateVersion.objects.count() == 1


def test_an_invalid_template_is_refused_with_its_errors_and_validate_lists_them(
    owner_pipeline: Pipeline, admin_client: APIClient
) -> None:
    bad = "namespace: acme\nname: a/b\nversion: '1'\nconfig: {shared: {}}\n"

    published = build_client(owner_pipeline).post(
        "/v4/pipeline/template", {"yaml": bad}, format="json"
    )
    validated = admin_client.post("/v4/pipeline/template/validate", {"yaml": bad}, format="json")
    good = admin_client.post(
        "/v4/pipeline/template/validate", {"yaml": sd_template()}, format="json"
    )
    not_yaml = admin_client.post("/v4/pipeline/template/validate", {"yaml": "a: [b"}, format="json")

    assert published.status_code == 400
    assert published.json()["message"] == "Template has invalid format: 4 error(s)."
    assert validated.status_code == 200
    assert [error["path"] for error in validated.json()["errors"]] == [
        ["name"],
        ["description"],
        ["maintainer"],
        ["config", "jobs"],
    ]
    assert good.json()["errors"] == []
    assert good.json()["template"]["workflowGraph"]["nodes"][-1] == {"name": "publish"}
    assert not_yaml.status_code == 400
    assert PipelineTemplate.objects.count() == 0


def test_tags_point_at_versions_and_a_version_or_tag_reads_with_its_metadata(
    owner_pipeline: Pipeline, admin_client: APIClient, outsider: User
) -> None:
    client = build_client(owner_pipeline)
    for version in ["1.0", "1.0", "1.1"]:
        publish(client, version)
    base = "/v4/pipeline/template/acme/node"
    plural = "/v4/pipeline/templates/acme/node"

    created = client.put(f"{base}/tags/stable", {"version": "1.0.1"}, format="json")
    moved = client.put(f"{base}/tags/stable", {"version": "1.0.0"}, format="json")
    missing = client.put(f"{base}/tags/stable", {"version": "9.0.0"}, format="json")
    other = pipeline_from_yaml(YAML, owner=outsider, name="local/other")
    stranger = build_client(other).put(f"{base}/tags/beta", {"version": "1.0.0"}, format="json")

    assert (created.status_code, moved.status_code) == (201, 200)
    assert missing.status_code == 404
    assert stranger.status_code == 403
    tags = admin_client.get(f"{plural}/tags").json()
    assert [(t["tag"], t["version"], t["templateType"]) for t in tags] == [
        ("stable", "1.0.0", "PIPELINE")
    ]
    by_tag = admin_client.get(f"{base}/stable").json()
    assert (by_tag["version"], by_tag["namespace"], by_tag["name"]) == ("1.0.0", "acme", "node")
    assert by_tag["latestVersion"] == "1.1.0"
    assert by_tag["pipelineId"] == owner_pipeline.pk
    assert admin_client.get(f"{base}/1.0").json()["version"] == "1.0.1"
    assert admin_client.get(f"{base}/1").json()["version"] == "1.1.0"
    assert admin_client.get(f"{base}/7").status_code == 404
    assert admin_client.get(f"{base}/a$b").status_code == 400
    assert client.delete(f"{plural}/tags/stable").status_code == 204
    assert admin_client.get(f"{plural}/tags").json() == []
    assert client.delete(f"{plural}/tags/stable").status_code == 404


def test_lists_and_reads_of_templates_and_versions(
    owner_pipeline: Pipeline, admin_client: APIClient
) -> None:
    client = build_client(owner_pipeline)
    publish(client, "1.0")
    publish(client, "1.1")
    template = PipelineTemplate.objects.get()

    with CaptureQueriesContext(connection) as queries:
        listed = admin_client.get("/v4/pipeline/templates").json()
    versions = admin_client.get("/v4/pipeline/templates/acme/node/versions").json()

    assert len(queries) <= 6
    assert [(t["namespace"], t["name"], t["templateType"]) for t in listed] == [
        ("acme", "node", "PIPELINE")
    ]
    assert "trustedSinceVersion" not in listed[0]
    assert admin_client.get("/v4/pipeline/templates?search=nothing").json() == []
    assert [v["version"] for v in versions] == ["1.1.0", "1.0.0"]
    assert admin_client.get(f"/v4/pipeline/template/{template.pk}").json()["name"] == "node"
    assert admin_client.get("/v4/pipeline/template/acme/node").json()["latestVersion"] == "1.1.0"
    assert admin_client.get("/v4/pipeline/template/acme/none").status_code == 404
    assert admin_client.get("/v4/pipeline/templates/acme/none/versions").status_code == 404


def test_the_owners_admin_or_build_removes_a_template_and_others_cannot(
    owner_pipeline: Pipeline, admin_client: APIClient, member_client: APIClient
) -> None:
    publish(build_client(owner_pipeline))

    refused = member_client.delete("/v4/pipeline/templates/acme/node")
    pull = build_client(owner_pipeline, pr_num=5).delete("/v4/pipeline/templates/acme/node")
    removed = admin_client.delete("/v4/pipeline/templates/acme/node")

    assert refused.status_code == 403
    assert pull.status_code == 403
    assert removed.status_code == 204
    assert PipelineTemplateVersion.objects.count() == 0
    assert admin_client.get("/v4/pipeline/template/acme/node").status_code == 404


def test_screwdriver_answers_lists_and_removals_only_under_the_plural_path(
    owner_pipeline: Pipeline, admin_client: APIClient
) -> None:
    client = build_client(owner_pipeline)
    publish(client, "1.0")
    client.put("/v4/pipeline/template/acme/node/tags/stable", {"version": "1.0.0"}, format="json")
    plural = "/v4/pipeline/templates/acme/node"

    # Screwdriver has no GET of one template, nor tagging, under the plural path.
    assert admin_client.get(plural).status_code == 405
    tagged = admin_client.put(f"{plural}/tags/beta", {"version": "1.0.0"}, format="json")
    assert tagged.status_code == 405
    # The singular lists and removals this server answered first stay as aliases.
    assert admin_client.get(f"{plural}/versions").json() == (
        admin_client.get("/v4/pipeline/template/acme/node/versions").json()
    )
    assert admin_client.get(f"{plural}/tags").json() == (
        admin_client.get("/v4/pipeline/template/acme/node/tags").json()
    )
    assert client.delete("/v4/pipeline/template/acme/node/tags/stable").status_code == 204
    assert client.delete("/v4/pipeline/template/acme/node").status_code == 204
    assert not PipelineTemplate.objects.exists()


def test_removing_one_version_takes_its_tags_and_moves_the_latest_back(
    owner_pipeline: Pipeline,
    admin_client: APIClient,
    member_client: APIClient,
    outsider: User,
) -> None:
    client = build_client(owner_pipeline)
    for version in ["1.0", "1.1", "1.2"]:
        publish(client, version)
    client.put("/v4/pipeline/template/acme/node/tags/stable", {"version": "1.2.0"}, format="json")
    client.put("/v4/pipeline/template/acme/node/tags/old", {"version": "1.0.0"}, format="json")
    base = "/v4/pipeline/templates/acme/node/versions"
    stranger = build_client(pipeline_from_yaml(YAML, owner=outsider, name="local/other"))

    assert member_client.delete(f"{base}/1.2.0").status_code == 403
    assert stranger.delete(f"{base}/1.2.0").status_code == 403
    assert build_client(owner_pipeline, pr_num=3).delete(f"{base}/1.2.0").status_code == 403
    assert client.delete(f"{base}/1.2").status_code == 400
    assert client.delete(f"{base}/9.9.9").status_code == 404
    assert admin_client.delete("/v4/pipeline/templates/acme/none/versions/1.0.0").status_code == (
        404
    )
    assert client.delete(f"{base}/1.2.0").status_code == 204

    template = PipelineTemplate.objects.get()
    assert template.latest_version == "1.1.0"
    assert sorted(template.versions.values_list("version", flat=True)) == ["1.0.0", "1.1.0"]
    assert list(template.tags.values_list("tag", flat=True)) == ["old"]
    assert admin_client.get("/v4/pipeline/template/acme/node").json()["latestVersion"] == "1.1.0"
    # An older version goes without moving the latest; the last one leaves the name unversioned.
    assert admin_client.delete(f"{base}/1.0.0").status_code == 204
    assert PipelineTemplate.objects.get().latest_version == "1.1.0"
    assert not PipelineTemplate.objects.get().tags.exists()
    assert admin_client.delete(f"{base}/1.1.0").status_code == 204
    assert PipelineTemplate.objects.get().latest_version == ""
    assert admin_client.get(base).json() == []


def test_only_a_server_admin_trusts_a_pipeline_template_from_its_latest_version_on(
    owner_pipeline: Pipeline, admin_client: APIClient
) -> None:
    client = build_client(owner_pipeline)
    publish(client, "1.0")
    publish(client, "1.1")
    root = APIClient()
    root.force_authenticate(User.objects.create_superuser(username="root"))
    url = "/v4/pipeline/templates/acme/node/trusted"

    refused = admin_client.put(url, {"trusted": True}, format="json")
    by_build = client.put(url, {"trusted": True}, format="json")
    done = root.put(url, {"trusted": True}, format="json")

    assert (refused.status_code, by_build.status_code, done.status_code) == (403, 403, 204)
    assert "server admin" in refused.json()["message"]
    shown = admin_client.get("/v4/pipeline/template/acme/node").json()
    assert shown["trustedSinceVersion"] == "1.1.0"
    # Marking it again keeps the version it was trusted since; later versions are trusted too.
    publish(client, "2.0")
    assert root.put(url, {"trusted": True}, format="json").status_code == 204
    assert PipelineTemplate.objects.get().trusted_since_version == "1.1.0"
    assert root.put(url, {"trusted": False}, format="json").status_code == 204
    assert PipelineTemplate.objects.get().trusted_since_version == ""
    assert root.put(url, {"trusted": "maybe"}, format="json").status_code == 400
    missing = root.put("/v4/pipeline/templates/acme/none/trusted", {"trusted": True}, format="json")
    assert missing.status_code == 404
    assert (
        root.put(
            "/v4/pipeline/templates/ac%20me/node/trusted", {"trusted": True}, format="json"
        ).status_code
        == 400
    )


def test_a_file_naming_a_published_template_gets_its_jobs(owner_pipeline: Pipeline) -> None:
    client = build_client(owner_pipeline)
    publish(client, "1.0", step="npm test")
    publish(client, "2.0", step="npm run test2")
    client.put("/v4/pipeline/template/acme/node/tags/stable", {"version": "1.0.0"}, format="json")
    text = "template: acme/node@stable\njobs:\n  publish: {image: node:22}\n"

    result = parse_pipeline_yaml(
        text, templates=database_templates, pipeline_templates=database_pipeline_templates
    )

    assert "errors" not in result, result.get("errors")
    assert result["jobs"]["test"][0]["commands"] == [{"name": "test", "command": "npm test"}]
    assert result["jobs"]["publish"][0]["image"] == "node:22"
    assert result["jobs"]["test"][0]["environment"]["SD_PIPELINE_TEMPLATE_VERSION"] == "1.0.0"
    assert result["templateVersionId"] == PipelineTemplateVersion.objects.get(version="1.0.0").pk
    missing = parse_pipeline_yaml(
        "template: acme/node@3\n", pipeline_templates=database_pipeline_templates
    )
    assert missing["errors"] == ["Error: Pipeline template acme/node@3 does not exist"]
