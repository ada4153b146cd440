"""Routes beyond the basics: tokens, rights, restarts, jobs, guests, paging, badges, docs."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from builds.models import Build, BuildStatus, Step
from conftest import GitRepo
from pipelines.models import Event, Job, Pipeline, Secret, Token
from pipelines.services import create_secret, grant_permission
from pipelines.tests.api_fixtures import (
    CHAIN,
    World,
    finish,
    main_build,
    make_world,
    new_event,
    with_bearer,
)
from screwdriver_site.api.tokens import issue_user_token
from screwdriver_site.tokens import (
    decode,
    issue_build_token,
    issue_guest_token,
    issue_temporal_token,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_hook_delivery(settings: Any) -> None:
    settings.SD_API_URL = "http://127.0.0.1:9"


@pytest.fixture
def alice() -> User:
    return User.objects.create_user(username="alice", first_name="Alice", password="pw-alice-1")


@pytest.fixture
def bob() -> User:
    return User.objects.create_user(username="bob")


@pytest.fixture
def world(alice: User) -> World:
    """alice's pipeline, made without git: for what does not read the repository."""
    return make_world(alice)


@pytest.fixture
def git_world(make_repo: Callable[..., GitRepo], alice: User) -> World:
    """alice's pipeline on a real repository: for starts, restarts and syncs."""
    return make_world(alice, make_repo({"screwdriver.yaml": CHAIN}))


def jwt(user: User) -> APIClient:
    return with_bearer(issue_user_token(username=user.username, is_admin=user.is_superuser))


def error(response: Any, status: int) -> str:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"statusCode", "error", "message"} and body["statusCode"] == status
    return str(body["message"])


# --- tokens ----------------------------------------------------------------------------------


def test_a_user_token_value_is_shown_once_and_stored_hashed(alice: User) -> None:
    client = jwt(alice)

    created = client.post("/v4/tokens", {"name": "laptop"}, format="json").json()
    listed = client.get("/v4/tokens").json()

    assert len(created["value"]) >= 40 and created["lastUsed"] == ""
    assert "value" not in listed[0] and listed[0]["name"] == "laptop"
    assert not Token.objects.filter(hash=created["value"]).exists()
    assert with_bearer(created["value"]).get("/v4/tokens").status_code == 200


def test_refreshing_a_token_retires_the_old_value(alice: User) -> None:
    client = jwt(alice)
    old = client.post("/v4/tokens", {"name": "laptop"}, format="json").json()

    new = client.put(f"/v4/tokens/{old['id']}/refresh").json()

    assert new["id"] == old["id"] and new["value"] != old["value"]
    error(with_bearer(old["value"]).get("/v4/tokens"), 401)
    assert with_bearer(new["value"]).get("/v4/tokens").status_code == 200
    assert client.delete(f"/v4/tokens/{old['id']}").status_code == 204
    error(with_bearer(new["value"]).get("/v4/tokens"), 401)


def test_a_pipeline_token_acts_on_its_pipeline_only(
    git_world: World, make_repo: Callable[..., GitRepo], bob: User
) -> None:
    value = (
        jwt(git_world.owner)
        .post(f"/v4/pipelines/{git_world.pipeline.pk}/tokens", {"name": "ci"}, format="json")
        .json()["value"]
    )
    exchanged = APIClient().get("/v4/auth/token", {"api_token": value}).json()["token"]
    assert decode(exchanged).scope == ("pipeline",)
    other = make_world(bob, make_repo({"screwdriver.yaml": CHAIN}, "other")).pipeline

    for client in (with_bearer(value), with_bearer(exchanged)):
        started = client.post(
            "/v4/events", {"pipelineId": git_world.pipeline.pk, "startFrom": "main"}, format="json"
        )
        assert started.status_code == 201, started.content
        assert started.json()["creator"]["username"] == f"pipeline:{git_world.pipeline.pk}"
        error(client.post("/v4/events", {"pipelineId": other.pk}, format="json"), 403)
        error(client.get(f"/v4/pipelines/{other.pk}"), 403)
        assert [x["id"] for x in client.get("/v4/pipelines").json()] == [git_world.pipeline.pk]
        error(client.post(f"/v4/pipelines/{git_world.pipeline.pk}/tokens", {"name": "x"}), 403)


def test_a_temporal_token_is_exchanged_for_a_build_token(world: World) -> None:
    temporal = with_bearer(issue_temporal_token(world.build))
    url = f"/v4/builds/{world.build.pk}"

    error(temporal.get(url), 403)
    token = temporal.post(f"{url}/token").json()["token"]

    assert decode(token).scope == ("build",) and decode(token).build_id == world.build.pk
    assert with_bearer(token).get(url).status_code == 200


# --- rights ----------------------------------------------------------------------------------


def test_the_creator_is_admin_and_grants_others_rights(git_world: World, bob: User) -> None:
    p = git_world.pipeline.pk
    start = {"pipelineId": p, "startFrom": "main"}
    error(jwt(bob).post("/v4/events", start, format="json"), 403)

    granted = jwt(git_world.owner).put(f"/v4/pipelines/{p}/permissions/bob", {"role": "push"})

    assert granted.json()["role"] == "push"
    assert jwt(bob).post("/v4/events", start, format="json").status_code == 201
    error(jwt(bob).put(f"/v4/pipelines/{p}/permissions/bob", {"role": "admin"}), 403)
    assert jwt(bob).get(f"/v4/pipelines/{p}").json()["admins"] == {"alice": True}
    assert jwt(git_world.owner).delete(f"/v4/pipelines/{p}/permissions/bob").status_code == 204
    error(jwt(bob).post("/v4/events", start, format="json"), 403)


def test_the_last_admin_cannot_be_removed_or_demoted(world: World) -> None:
    client = jwt(world.owner)
    p = world.pipeline.pk

    assert "last admin" in error(client.delete(f"/v4/pipelines/{p}/permissions/alice"), 409)
    error(client.put(f"/v4/pipelines/{p}/permissions/alice", {"role": "pull"}), 409)
    assert world.pipeline.is_admin(world.owner)


def test_a_private_pipeline_is_hidden_from_people_without_a_role(world: World, bob: User) -> None:
    Pipeline.objects.filter(pk=world.pipeline.pk).update(scm_repo={"private": True})

    error(jwt(bob).get(f"/v4/pipelines/{world.pipeline.pk}"), 403)
    assert jwt(bob).get("/v4/pipelines").json() == []
    grant_permission(pipeline=world.pipeline, user=bob, role="pull", granted_by="alice")
    assert jwt(bob).get(f"/v4/pipelines/{world.pipeline.pk}/events").status_code == 200
    assert len(jwt(bob).get("/v4/pipelines").json()) == 1


def test_guests_are_refused_unless_the_server_allows_them(world: World, settings: Any) -> None:
    settings.SD_GUEST_ACCESS = False
    error(APIClient().get("/v4/auth/login/guest"), 403)
    error(with_bearer(issue_guest_token()).get(f"/v4/pipelines/{world.pipeline.pk}"), 401)

    settings.SD_GUEST_ACCESS = True
    guest = with_bearer(APIClient().get("/v4/auth/login/guest").json()["token"])
    assert guest.get(f"/v4/pipelines/{world.pipeline.pk}/jobs").status_code == 200
    error(guest.post("/v4/events", {"pipelineId": world.pipeline.pk}, format="json"), 403)
    Pipeline.objects.filter(pk=world.pipeline.pk).update(scm_repo={"private": True})
    error(guest.get(f"/v4/pipelines/{world.pipeline.pk}"), 403)
    assert guest.get("/v4/pipelines").json() == []


def test_a_local_account_signs_in_with_its_password(alice: User) -> None:
    good = APIClient().post("/v4/auth/login", {"username": "alice", "password": "pw-alice-1"})
    bad = APIClient().post("/v4/auth/login", {"username": "alice", "password": "nope"})

    assert decode(good.json()["token"]).username == "alice"
    error(bad, 401)


# --- build tokens after the end --------------------------------------------------------------


def test_an_ended_builds_token_may_only_report_teardown_for_a_while(world: World) -> None:
    build = finish(world.build, status=BuildStatus.ABORTED, ago_seconds=30)
    # Stopped while its teardown still runs: that step has not reported its end yet.
    Step.objects.filter(build=build, name="world").update(end_time=None, code=None)
    client = with_bearer(issue_build_token(build))
    b = f"/v4/builds/{build.pk}"
    batch = {"seq": 0, "firstLine": 0, "lines": [{"t": 1, "m": "teardown"}]}

    assert client.post(f"{b}/heartbeat").json() == {"status": "ABORTED"}
    assert client.put(f"{b}/steps/world", {"code": 143}, format="json").status_code == 200
    assert client.post(f"{b}/steps/world/logs", batch, format="json").status_code == 201
    error(client.put(b, {"status": "FAILURE"}, format="json"), 409)
    for url in (b, f"{b}/launch", f"{b}/steps", f"/v4/pipelines/{world.pipeline.pk}"):
        assert "may now only report teardown" in error(client.get(url), 403)
    error(client.post(f"{b}/token"), 403)

    Build.objects.filter(pk=build.pk).update(end_time=timezone.now() - timedelta(minutes=6))
    error(client.post(f"{b}/steps/world/logs", {**batch, "seq": 1}, format="json"), 403)
    error(client.post(f"{b}/heartbeat"), 403)


# --- events, jobs, pipelines -----------------------------------------------------------------


def test_restarting_from_a_build_makes_a_child_event_at_the_same_sha(git_world: World) -> None:
    parent = git_world.done
    build = main_build(parent)

    body = jwt(git_world.owner).post("/v4/events", {"buildId": build.pk}, format="json").json()

    assert body["parentEventId"] == parent.pk and body["groupEventId"] == parent.pk
    assert body["sha"] == parent.sha and body["startFrom"] == "main"
    again = jwt(git_world.owner).post(
        "/v4/events", {"parentEventId": body["id"], "startFrom": "publish"}, format="json"
    )
    assert again.json()["groupEventId"] == parent.pk
    assert again.json()["parentEventId"] == body["id"]


def test_a_restart_must_name_its_own_pipeline(world: World) -> None:
    response = jwt(world.owner).post(
        "/v4/events", {"parentEventId": world.done.pk, "pipelineId": 999}, format="json"
    )

    assert "pipelineId" in error(response, 400)
    assert Event.objects.count() == 2


def test_a_disabled_job_says_who_and_why_and_does_not_start(git_world: World) -> None:
    job = Job.objects.get(pipeline=git_world.pipeline, name="publish")
    client = jwt(git_world.owner)

    body = client.put(
        f"/v4/jobs/{job.pk}", {"state": "DISABLED", "stateChangeMessage": "flaky"}, format="json"
    ).json()

    assert (body["state"], body["stateChanger"], body["stateChangeMessage"]) == (
        "DISABLED",
        "alice",
        "flaky",
    )
    started = client.post(
        "/v4/events", {"pipelineId": git_world.pipeline.pk, "startFrom": "publish"}, format="json"
    )
    assert "disabled" in error(started, 422)


def test_last_successful_meta_and_latest_build(world: World) -> None:
    job = world.build.job_id
    client = jwt(world.owner)

    assert client.get(f"/v4/jobs/{job}/lastSuccessfulMeta").json() == {"version": "1.0"}
    assert client.get(f"/v4/jobs/{job}/latestBuild").json()["id"] == world.build.pk
    latest_ok = client.get(f"/v4/jobs/{job}/latestBuild", {"status": "SUCCESS"}).json()
    assert latest_ok["id"] == main_build(world.done).pk
    error(client.get(f"/v4/jobs/{job}/latestBuild", {"status": "FROZEN"}), 404)


def test_a_pipeline_with_running_builds_is_not_deleted(world: World) -> None:
    client = jwt(world.owner)

    error(client.delete(f"/v4/pipelines/{world.pipeline.pk}"), 409)
    Build.objects.update(status=BuildStatus.SUCCESS)
    assert client.delete(f"/v4/pipelines/{world.pipeline.pk}").status_code == 204
    assert not Pipeline.objects.exists() and not Event.objects.exists()


def test_sync_rereads_the_config_at_the_branch_head(git_world: World) -> None:
    Job.objects.filter(pipeline=git_world.pipeline, name="publish").update(archived=True)

    assert (
        jwt(git_world.owner).post(f"/v4/pipelines/{git_world.pipeline.pk}/sync").status_code == 204
    )
    assert not Job.objects.get(pipeline=git_world.pipeline, name="publish").archived


def test_badges_are_svg_with_escaped_text(world: World) -> None:
    Pipeline.objects.filter(pk=world.pipeline.pk).update(name="<b>&x")
    client = jwt(world.owner)

    pipeline_badge = client.get(f"/v4/pipelines/{world.pipeline.pk}/badge")
    job_badge = client.get(f"/v4/pipelines/{world.pipeline.pk}/main/badge")

    assert pipeline_badge["Content-Type"].startswith("image/svg+xml")
    assert b"&lt;b&gt;&amp;x" in pipeline_badge.content and b"<b>" not in pipeline_badge.content
    assert b"queued" in job_badge.content
    error(client.get(f"/v4/pipelines/{world.pipeline.pk}/nope/badge"), 404)


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query", [{"page": "x"}, {"count": "1.5"}, {"sort": "sideways"}, {"sortBy": "secret"}]
)
def test_bad_paging_is_a_bad_request(world: World, query: dict[str, Any]) -> None:
    error(jwt(world.owner).get(f"/v4/pipelines/{world.pipeline.pk}/events", query), 400)


def test_paging_past_the_end_is_an_empty_page(world: World) -> None:
    client = jwt(world.owner)
    url = f"/v4/pipelines/{world.pipeline.pk}/events"

    assert client.get(url, {"page": str(10**30)}).json() == []
    assert [e["id"] for e in client.get(url, {"count": "1", "sort": "ascending"}).json()] == [
        world.done.pk
    ]


def test_a_bad_secret_is_refused_and_nothing_is_written(world: World) -> None:
    client = jwt(world.owner)
    p = world.pipeline.pk
    create_secret(pipeline=world.pipeline, name="TAKEN", value="v", allow_in_pr=False)

    assert "name" in error(
        client.post("/v4/secrets", {"pipelineId": p, "name": "lower", "value": "v"}), 400
    )
    error(client.post("/v4/secrets", {"pipelineId": p, "name": "TAKEN", "value": "w"}), 409)
    error(client.post("/v4/secrets", {"pipelineId": p, "name": "NO_VALUE"}), 400)
    assert list(Secret.objects.values_list("name", flat=True)) == ["TAKEN"]


def test_a_lone_surrogate_in_a_body_is_a_bad_request(world: World) -> None:
    response = jwt(world.owner).generic(
        "POST",
        "/v4/events",
        json.dumps({"pipelineId": world.pipeline.pk, "causeMessage": "?"}).replace("?", "\\ud800"),
        content_type="application/json",
    )

    assert "surrogate" in error(response, 400)
    assert Event.objects.count() == 2


# --- query counts ------------------------------------------------------------------------------


def queries(client: APIClient, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_new_lists_cost_the_same_for_few_and_many_rows(git_world: World, bob: User) -> None:
    client = jwt(git_world.owner)
    p = git_world.pipeline.pk
    urls = [
        f"/v4/pipelines/{p}/builds",
        f"/v4/pipelines/{p}/secrets",
        f"/v4/pipelines/{p}/tokens",
        f"/v4/pipelines/{p}/permissions",
        "/v4/pipelines",
        "/v4/tokens",
    ]
    few = {url: queries(client, url) for url in urls}
    for i in range(6):
        new_event(git_world.pipeline)
        create_secret(pipeline=git_world.pipeline, name=f"S{i}", value="v", allow_in_pr=False)
        client.post(f"/v4/pipelines/{p}/tokens", {"name": f"t{i}"}, format="json")
        client.post("/v4/tokens", {"name": f"u{i}"}, format="json")
        user = User.objects.create_user(username=f"user{i}")
        grant_permission(pipeline=git_world.pipeline, user=user, role="admin", granted_by="alice")

    assert {url: queries(client, url) for url in urls} == few


# --- documentation -------------------------------------------------------------------------


def test_the_openapi_document_and_swagger_ui_are_served_without_a_cdn() -> None:
    schema = APIClient().get("/v4/swagger.json")
    page = APIClient().get("/v4/documentation")

    assert schema.json()["openapi"].startswith("3.")
    assert "/v4/pipelines/{pipeline_id}/tokens/{token_id}/refresh" in schema.json()["paths"]
    # The launcher's several step reports in one request.
    assert "put" in schema.json()["paths"]["/v4/builds/{build_id}/steps"]
    html = page.content.decode()
    assert "cdn" not in html.lower() and "https://" not in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html


def test_versions_and_contexts_need_no_token() -> None:
    assert any(v.startswith("Django@") for v in APIClient().get("/v4/versions").json()["versions"])
    assert APIClient().get("/v4/auth/contexts").json()[0]["context"] == "local:localhost"


def _as(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_an_admin_updates_settings_and_badges_and_unknown_settings_are_refused(
    world: World, alice: User
) -> None:
    url = f"/v4/pipelines/{world.pipeline.pk}"
    body = {
        "settings": {"aliasName": "web", "groupedEvents": True},
        "badges": {"sonar": {"name": "dashboard", "uri": "https://sonar.example/app"}},
    }
    response = _as(alice).put(url, body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["settings"] == {"aliasName": "web", "groupedEvents": True}
    assert response.json()["badges"]["sonar"]["name"] == "dashboard"

    refused = _as(alice).put(url, {"settings": {"colour": "blue"}}, format="json")
    assert refused.status_code == 400
    assert "colour" in refused.json()["message"]
    world.pipeline.refresh_from_db()
    assert "colour" not in world.pipeline.settings


def test_an_inactive_pipeline_starts_no_events_until_it_is_active_again(
    git_world: World, alice: User
) -> None:
    url = f"/v4/pipelines/{git_world.pipeline.pk}"
    body = {"state": "INACTIVE", "stateChangeMessage": "moved to the new repo"}
    response = _as(alice).put(url, body, format="json")
    assert response.status_code == 200
    assert response.json()["stateChanger"] == "alice"
    assert response.json()["stateChangeMessage"] == "moved to the new repo"

    start = {"pipelineId": git_world.pipeline.pk, "startFrom": "~commit"}
    refused = _as(alice).post("/v4/events", start, format="json")
    assert refused.status_code == 409
    assert "INACTIVE".lower() in refused.json()["message"]

    assert _as(alice).put(url, {"state": "ACTIVE"}, format="json").status_code == 200
    assert _as(alice).post("/v4/events", start, format="json").status_code == 201


def test_settings_public_false_hides_a_pipeline_from_people_without_a_role(
    world: World, alice: User, bob: User
) -> None:
    url = f"/v4/pipelines/{world.pipeline.pk}"
    assert _as(bob).get(url).status_code == 200  # local pipelines are public by default
    assert _as(alice).put(url, {"settings": {"public": False}}, format="json").status_code == 200
    assert _as(bob).get(url).status_code == 403
    assert _as(alice).get(url).status_code == 200


def test_the_list_and_the_home_page_agree_with_settings_public(
    world: World, alice: User, bob: User
) -> None:
    from pipelines import selectors

    assert [p["id"] for p in _as(bob).get("/v4/pipelines").json()] == [world.pipeline.pk]
    assert list(selectors.readable_pipelines(bob)) == [world.pipeline]
    _as(alice).put(
        f"/v4/pipelines/{world.pipeline.pk}", {"settings": {"public": False}}, format="json"
    )
    assert _as(bob).get("/v4/pipelines").json() == []
    assert list(selectors.readable_pipelines(bob)) == []
    assert [p["id"] for p in _as(alice).get("/v4/pipelines").json()] == [world.pipeline.pk]
    _as(alice).put(
        f"/v4/pipelines/{world.pipeline.pk}", {"settings": {"public": True}}, format="json"
    )
    assert list(selectors.readable_pipelines(bob)) == [world.pipeline]
