"""/v4/templates and /v4/validator/template: publishing, versions, tags, owners and removal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from builds.models import Build
from pipelines.models import Event, Job, Pipeline, Template, TemplateTag
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml
from screwdriver_site.encoded_paths import routed_path
from screwdriver_site.tokens import issue_build_token

pytestmark = pytest.mark.django_db

YAML = "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n    steps:\n      - a: echo a\n"


def sd_template(version: str = "1.0", name: str = "tpl", step: str = "echo hi") -> str:
    return (
        f"namespace: ns\nname: {name}\nversion: '{version}'\ndescription: d\n"
        f"maintainer: a@b.example.com\nconfig:\n  image: alpine\n  steps:\n    - hi: {step}\n"
    )


def build_client(pipeline: Pipeline, *, pr_num: int | None = None) -> APIClient:
    event = event_from_yaml(pipeline, YAML)
    if pr_num is not None:
        # A pull request's event, as the PR service stores one (its builds run the same way).
        Event.objects.filter(pk=event.pk).update(type=Event.Type.PR, pr_num=pr_num)
    built = Build.objects.filter(event=event).first()
    assert built is not None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_build_token(built)}")
    return client


def raw(client: APIClient, method: str, path: str, body: Any = None) -> Any:
    """A request as a WSGI server hands it over: the path decoded, the sent one in REQUEST_URI."""
    return getattr(client, method)(path, body, format="json", REQUEST_URI=path)


@pytest.fixture
def owner_pipeline(owner: User) -> Pipeline:
    return pipeline_from_yaml(YAML, owner=owner, name="local/templates")


def test_a_build_publishes_versions_with_patch_numbers_the_server_assigns(
    owner_pipeline: Pipeline,
) -> None:
    client = build_client(owner_pipeline)

    versions = [
        client.post("/v4/templates", {"yaml": sd_template(v)}, format="json").json()["version"]
        for v in ["1.0", "1.0", "1", "2", "1.0.7"]
    ]

    assert versions == ["1.0.0", "1.0.1", "1.0.2", "2.0.0", "1.0.3"]
    latest = Template.objects.filter(namespace="ns", name="tpl", latest=True)
    assert [t.version for t in latest] == ["2.0.0"]
    first = client.post("/v4/templates", {"yaml": sd_template("3")}, format="json")
    assert first.status_code == 201
    assert first["Location"].endswith(f"/v4/templates/{first.json()['id']}")
    assert first.json() | {"id": 0, "createTime": ""} == {
        "id": 0,
        "namespace": "ns",
        "name": "tpl",
        "version": "3.0.0",
        "description": "d",
        "maintainer": "a@b.example.com",
        "labels": [],
        "config": {"image": "alpine", "steps": [{"hi": "echo hi"}]},
        "pipelineId": owner_pipeline.pk,
        "createTime": "",
        "trusted": False,
        "latest": True,
    }


def test_only_the_first_publishers_pipeline_publishes_and_never_from_a_pull_request(
    owner_pipeline: Pipeline, outsider: User
) -> None:
    assert (
        build_client(owner_pipeline)
        .post("/v4/templates", {"yaml": sd_template()}, format="json")
        .status_code
        == 201
    )
    other = pipeline_from_yaml(YAML, owner=outsider, name="local/other")

    stranger = build_client(other).post("/v4/templates", {"yaml": sd_template()}, format="json")
    pull = build_client(owner_pipeline, pr_num=4).post(
        "/v4/templates", {"yaml": sd_template()}, format="json"
    )

    assert stranger.status_code == 403
    assert "pipeline that first published it" in stranger.json()["message"]
    assert pull.status_code == 403, pull.json()
    assert pull.json()["message"].startswith("A pull request's build cannot publish")
    assert Template.objects.count() == 1


def test_people_cannot_publish_and_an_invalid_template_lists_its_errors(
    owner_pipeline: Pipeline, admin_client: APIClient
) -> None:
    assert (
        admin_client.post("/v4/templates", {"yaml": sd_template()}, format="json").status_code
        == 403
    )
    bad = build_client(owner_pipeline).post(
        "/v4/templates", {"yaml": "name: x\nversion: 1.2.3\nconfig: {image: 1}\n"}, format="json"
    )
    assert bad.status_code == 400
    assert bad.json()["message"] == "Template has invalid format: 4 error(s)."
    too_long = build_client(owner_pipeline).post(
        "/v4/templates", {"yaml": sd_template("12345678.1234567")}, format="json"
    )
    assert too_long.status_code == 400
    assert too_long.json()["message"].startswith("Version 12345678.1234567.0 would be longer")
    assert [e["path"] for e in bad.json()["errors"]] == [
        ["description"],
        ["maintainer"],
        ["config", "image"],
        ["config"],
    ]


def test_the_validator_answers_errors_and_the_template_as_screwdriver_does(
    admin_client: APIClient,
) -> None:
    good = admin_client.post("/v4/validator/template", {"yaml": sd_template()}, format="json")
    missing = admin_client.post(
        "/v4/validator/template",
        {"yaml": sd_template().replace("description: d\n", "")},
        format="json",
    )
    broken = admin_client.post("/v4/validator/template", {"yaml": "a: [b"}, format="json")

    assert good.status_code == 200
    assert good.json()["errors"] == []
    assert good.json()["template"]["name"] == "tpl"
    assert missing.json()["errors"] == [
        {
            "context": {"key": "description", "label": "description"},
            "message": '"description" is required',
            "path": ["description"],
            "type": "any.required",
        }
    ]
    assert broken.status_code == 400
    assert broken.json()["message"].startswith("Template is not valid YAML")


def test_a_namespaced_name_routes_by_its_encoded_slash(
    owner_pipeline: Pipeline, admin_client: APIClient
) -> None:
    client = build_client(owner_pipeline)
    for version in ["1.0", "1.0", "1.1"]:
        client.post("/v4/templates", {"yaml": sd_template(version)}, format="json")

    tagged = raw(client, "put", "/v4/templates/ns%2Ftpl/tags/stable", {"version": "1.0.1"})
    moved = raw(client, "put", "/v4/templates/ns%2Ftpl/tags/stable", {"version": "1.0.0"})
    versions = raw(admin_client, "get", "/v4/templates/ns%2Ftpl")
    by_tag = raw(admin_client, "get", "/v4/templates/ns%2Ftpl/stable")
    by_range = raw(admin_client, "get", "/v4/templates/ns%2Ftpl/1.0")
    tags = raw(admin_client, "get", "/v4/templates/ns%2Ftpl/tags")

    assert (tagged.status_code, moved.status_code) == (201, 200)
    assert [v["version"] for v in versions.json()] == ["1.1.0", "1.0.1", "1.0.0"]
    assert by_tag.json()["version"] == "1.0.0"
    assert by_range.json()["version"] == "1.0.1"
    assert [(t["tag"], t["version"], t["templateType"]) for t in tags.json()] == [
        ("stable", "1.0.0", "JOB")
    ]
    assert raw(admin_client, "get", "/v4/templates/ns%2Ftpl/9").status_code == 404
    assert raw(admin_client, "get", "/v4/templates/ns%2Fnone").status_code == 404


def test_routing_keeps_only_the_slashes_the_client_encoded() -> None:
    assert routed_path("/v4/templates/ns/tpl/tags", "/v4/templates/ns%2Ftpl/tags") == (
        "/v4/templates/ns%2Ftpl/tags"
    )
    assert routed_path("/v4/templates/ns/tpl", "/v4/templates/ns/tpl") == "/v4/templates/ns/tpl"
    assert routed_path("/v4/templates/ns/tpl", None) == "/v4/templates/ns/tpl"
    # A raw path that is not this request's (a proxy rewrote it) changes nothing.
    assert routed_path("/v4/templates/a/b", "/x/templates/ns%2Ftpl") == "/v4/templates/a/b"


def test_tags_and_removal_belong_to_the_owner_pipeline(
    owner_pipeline: Pipeline, outsider: User, admin_client: APIClient, member_client: APIClient
) -> None:
    client = build_client(owner_pipeline)
    client.post("/v4/templates", {"yaml": sd_template()}, format="json")
    stranger = build_client(pipeline_from_yaml(YAML, owner=outsider, name="local/other"))

    refused_tag = raw(stranger, "put", "/v4/templates/ns%2Ftpl/tags/stable", {"version": "1.0.0"})
    raw(client, "put", "/v4/templates/ns%2Ftpl/tags/stable", {"version": "1.0.0"})
    refused_untag = raw(stranger, "delete", "/v4/templates/ns%2Ftpl/tags/stable")
    refused_remove = raw(member_client, "delete", "/v4/templates/ns%2Ftpl")

    assert refused_tag.status_code == 403
    assert refused_untag.status_code == 403
    assert refused_remove.status_code == 403
    assert raw(client, "delete", "/v4/templates/ns%2Ftpl/tags/stable").status_code == 204
    assert raw(admin_client, "delete", "/v4/templates/ns%2Ftpl").status_code == 204
    assert not Template.objects.exists() and not TemplateTag.objects.exists()


def test_removing_one_version_takes_its_tags_and_hands_latest_to_the_newest_left(
    owner_pipeline: Pipeline, outsider: User, admin_client: APIClient, member_client: APIClient
) -> None:
    client = build_client(owner_pipeline)
    for version in ["1.0", "1.1", "1.2"]:
        client.post("/v4/templates", {"yaml": sd_template(version)}, format="json")
    raw(client, "put", "/v4/templates/ns%2Ftpl/tags/stable", {"version": "1.2.0"})
    raw(client, "put", "/v4/templates/ns%2Ftpl/tags/old", {"version": "1.0.0"})
    base = "/v4/templates/ns%2Ftpl/versions"
    stranger = build_client(pipeline_from_yaml(YAML, owner=outsider, name="local/other"))

    assert raw(member_client, "delete", f"{base}/1.2.0").status_code == 403
    assert raw(stranger, "delete", f"{base}/1.2.0").status_code == 403
    assert raw(build_client(owner_pipeline, pr_num=4), "delete", f"{base}/1.2.0").status_code == (
        403
    )
    assert raw(client, "delete", f"{base}/1.2").status_code == 400
    assert raw(client, "delete", f"{base}/9.9.9").status_code == 404
    assert raw(client, "delete", f"{base}/1.2.0").status_code == 204

    left = Template.objects.filter(namespace="ns", name="tpl")
    assert sorted(left.values_list("version", flat=True)) == ["1.0.0", "1.1.0"]
    assert list(left.filter(latest=True).values_list("version", flat=True)) == ["1.1.0"]
    assert list(TemplateTag.objects.values_list("tag", flat=True)) == ["old"]
    assert raw(admin_client, "delete", f"{base}/1.0.0").status_code == 204
    assert list(left.filter(latest=True).values_list("version", flat=True)) == ["1.1.0"]
    assert not TemplateTag.objects.exists()


def test_one_version_reads_by_its_id_under_the_singular_path(
    owner_pipeline: Pipeline, admin_client: APIClient
) -> None:
    client = build_client(owner_pipeline)
    published = client.post("/v4/templates", {"yaml": sd_template()}, format="json").json()

    found = admin_client.get(f"/v4/template/{published['id']}")

    assert found.status_code == 200
    assert found.json() == raw(admin_client, "get", "/v4/templates/ns%2Ftpl/1.0.0").json()
    assert admin_client.get(f"/v4/template/{published['id'] + 1}").status_code == 404


def test_only_a_server_admin_marks_a_template_trusted_and_new_versions_inherit_it(
    owner_pipeline: Pipeline, admin_client: APIClient
) -> None:
    client = build_client(owner_pipeline)
    client.post("/v4/templates", {"yaml": sd_template()}, format="json")
    root = User.objects.create_superuser(username="root")
    superuser = APIClient()
    superuser.force_authenticate(root)

    refused = raw(admin_client, "put", "/v4/templates/ns%2Ftpl/trusted", {"trusted": True})
    done = raw(superuser, "put", "/v4/templates/ns%2Ftpl/trusted", {"trusted": True})
    newer = client.post("/v4/templates", {"yaml": sd_template("1.0")}, format="json")

    assert (refused.status_code, done.status_code) == (403, 204)
    assert newer.json()["trusted"] is True


def test_the_list_filters_and_compacts_in_a_constant_number_of_queries(
    owner_pipeline: Pipeline, admin_client: APIClient
) -> None:
    client = build_client(owner_pipeline)
    for name in ["tpl", "other", "third"]:
        for version in ["1.0", "1.1"]:
            client.post("/v4/templates", {"yaml": sd_template(version, name)}, format="json")

    with CaptureQueriesContext(connection) as queries:
        compact = admin_client.get("/v4/templates?compact=true&sortBy=name&sort=ascending")
    searched = admin_client.get("/v4/templates?search=thi&namespace=ns")

    assert [(t["name"], t["version"]) for t in compact.json()] == [
        ("other", "1.1.0"),
        ("third", "1.1.0"),
        ("tpl", "1.1.0"),
    ]
    assert all("config" not in t for t in compact.json())
    assert len(queries) <= 6
    assert {t["name"] for t in searched.json()} == {"third"}
    assert Event.objects.count() == 1  # one build published them all


@pytest.mark.parametrize(
    "path", ["/v4/validator/template", "/v4/validator/command", "/v4/pipeline/template/validate"]
)
def test_a_spec_holding_a_lone_surrogate_is_a_400_not_a_server_error(
    admin_client: APIClient, path: str
) -> None:
    # Raw in the JSON body (what a fuzzer sends), and spelled as a YAML escape.
    raw = admin_client.post(path, '{"yaml": "name: \\ud800\\n"}', content_type="application/json")
    escaped = admin_client.post(path, {"yaml": 'name: "\\ud800"\n'}, format="json")

    # A control character, which the YAML reader refuses before it parses anything.
    control = admin_client.post(path, {"yaml": "a\x03b: c\n"}, format="json")

    assert raw.status_code == 400, raw.content
    assert escaped.status_code == 400, escaped.content
    assert "surrogate" in escaped.json()["message"]
    assert control.status_code == 400, control.content


USES = (
    "jobs:\n"
    "  main: {{template: 'ns/tpl@{v}', requires: [~commit]}}\n"
    "  other: {{template: 'ns/tpl@{v}', requires: [main]}}\n"
)


def _published(owner_pipeline: Pipeline, *versions: str) -> dict[str, int]:
    client = build_client(owner_pipeline)
    out = {}
    for version in versions:
        answer = client.post("/v4/templates", {"yaml": sd_template(version)}, format="json")
        assert answer.status_code == 201, answer.content
        out[answer.json()["version"]] = answer.json()["id"]
    return out


def test_metrics_count_each_versions_jobs_pipelines_and_builds_in_the_time_asked(
    owner_pipeline: Pipeline, owner: User, admin_client: APIClient
) -> None:
    ids = _published(owner_pipeline, "1.0", "2.0")
    first = pipeline_from_yaml(USES.format(v="1"), owner=owner, name="local/first")
    second = pipeline_from_yaml(USES.format(v="2"), owner=owner, name="local/second")
    third = pipeline_from_yaml(USES.format(v="2"), owner=owner, name="local/third")
    with time_machine.travel(datetime(2026, 1, 1, tzinfo=UTC), tick=False):
        event_from_yaml(first, USES.format(v="1"))
    with time_machine.travel(datetime(2026, 2, 1, tzinfo=UTC), tick=False):
        event_from_yaml(second, USES.format(v="2"))
    # An archived job is no longer counted, its builds still are (they are history).
    Job.objects.filter(pipeline=third, name="other").update(archived=True)

    with CaptureQueriesContext(connection) as queries:
        listed = raw(admin_client, "get", "/v4/templates/ns%2Ftpl/metrics")
    later = raw(admin_client, "get", "/v4/templates/ns%2Ftpl/metrics?startTime=2026-01-15")
    earlier = raw(admin_client, "get", "/v4/templates/ns%2Ftpl/metrics?endTime=2026-01-15T00:00Z")

    assert listed.status_code == 200, listed.content
    assert [(t["id"], t["version"]) for t in listed.json()] == [
        (ids["2.0.0"], "2.0.0"),
        (ids["1.0.0"], "1.0.0"),
    ]
    assert [t["metrics"] for t in listed.json()] == [
        {"jobs": {"count": 3}, "builds": {"count": 1}, "pipelines": {"count": 2}},
        {"jobs": {"count": 2}, "builds": {"count": 1}, "pipelines": {"count": 1}},
    ]
    assert [t["metrics"]["builds"]["count"] for t in later.json()] == [1, 0]
    assert [t["metrics"]["builds"]["count"] for t in earlier.json()] == [0, 1]
    # The same few queries for any number of versions, jobs and builds.
    assert len(queries) <= 6
    assert Build.objects.filter(template_id=ids["1.0.0"]).count() == 1


def test_metrics_refuse_what_screwdriver_refuses_and_name_an_unknown_template(
    owner_pipeline: Pipeline, admin_client: APIClient
) -> None:
    _published(owner_pipeline, "1.0")
    for query in ("search=x", "sortBy=id", "getCount=true", "startTime=yesterday", "count=x"):
        answer = raw(admin_client, "get", f"/v4/templates/ns%2Ftpl/metrics?{query}")
        assert answer.status_code == 400, (query, answer.content)
        assert answer.json()["message"]
    missing = raw(admin_client, "get", "/v4/templates/ns%2Fnone/metrics")
    assert (missing.status_code, missing.json()["message"]) == (
        404,
        "Template ns/none does not exist.",
    )


def test_metrics_refuse_a_time_with_no_utc_moment_with_a_400_not_a_500(
    owner_pipeline: Pipeline, admin_client: APIClient
) -> None:
    _published(owner_pipeline, "1.0")
    # Valid ISO 8601, but 9999-12-31 at -23:59 is past the last UTC moment Python can hold.
    for query in ("startTime=9999-12-31T23:59:59-23:59", "endTime=0001-01-01T00:00:00%2B23:59"):
        answer = raw(admin_client, "get", f"/v4/templates/ns%2Ftpl/metrics?{query}")
        assert answer.status_code == 400, (query, answer.content)
        assert "out of range" in answer.json()["message"]


def test_usage_lists_the_public_pipelines_of_that_version_with_their_last_run(
    owner_pipeline: Pipeline, owner: User, member_client: APIClient
) -> None:
    _published(owner_pipeline, "1.0", "2.0")
    used = pipeline_from_yaml(USES.format(v="1"), owner=owner, name="local/used")
    idle = pipeline_from_yaml(USES.format(v="1.0.0"), owner=owner, name="local/idle")
    pipeline_from_yaml(USES.format(v="1"), owner=owner, name="local/hidden", private=True)
    pipeline_from_yaml(USES.format(v="2"), owner=owner, name="local/newer")
    event = event_from_yaml(used, USES.format(v="1"))
    TemplateTag.objects.create(namespace="ns", name="tpl", tag="stable", version="2.0.0")

    with CaptureQueriesContext(connection) as queries:
        answer = raw(member_client, "get", "/v4/templates/ns%2Ftpl/1.0.0/usage/pipelines")
    by_tag = raw(member_client, "get", "/v4/templates/ns%2Ftpl/stable/usage/pipelines")

    assert answer.status_code == 200, answer.content
    assert answer.json() == [
        {
            "id": used.pk,
            "name": "local/used",
            "scmRepo": used.scm_repo,
            "lastRun": event.created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "admins": {"alice": True},
        },
        {
            "id": idle.pk,
            "name": "local/idle",
            "scmRepo": idle.scm_repo,
            "lastRun": None,
            "admins": {"alice": True},
        },
    ]
    assert len(queries) <= 6
    assert [p["name"] for p in by_tag.json()] == ["local/newer"]


def test_usage_of_an_unknown_version_is_a_404_and_a_bad_one_a_400(
    owner_pipeline: Pipeline, admin_client: APIClient
) -> None:
    _published(owner_pipeline, "1.0")
    missing = raw(admin_client, "get", "/v4/templates/ns%2Ftpl/9.9.9/usage/pipelines")
    bad = raw(admin_client, "get", "/v4/templates/ns%2Ftpl/1.x!/usage/pipelines")
    anonymous = raw(APIClient(), "get", "/v4/templates/ns%2Ftpl/1.0.0/usage/pipelines")

    assert (missing.status_code, missing.json()["message"]) == (
        404,
        "Template ns/tpl@9.9.9 does not exist.",
    )
    assert bad.status_code == 400 and "neither a version" in bad.json()["message"]
    assert anonymous.status_code in (401, 403)


def test_an_outsider_counts_a_private_pipelines_jobs_but_never_reads_its_name(
    owner_pipeline: Pipeline, owner: User, member: User
) -> None:
    _published(owner_pipeline, "1.0")
    pipeline_from_yaml(USES.format(v="1"), owner=owner, name="local/secret-app", private=True)
    bob = APIClient()
    bob.force_authenticate(member)  # signed in, no role on any pipeline

    metrics = raw(bob, "get", "/v4/templates/ns%2Ftpl/metrics")
    usage = raw(bob, "get", "/v4/templates/ns%2Ftpl/1.0.0/usage/pipelines")

    assert metrics.status_code == 200 and usage.status_code == 200
    assert metrics.json()[0]["metrics"]["jobs"] == {"count": 2}
    assert usage.json() == []
    assert b"secret-app" not in metrics.content + usage.content
