"""The /v4 API: who may call what, Screwdriver's shapes and errors, the launcher's calls, N+1.

Personas: the owner (the pipeline's admin, who created it), a server admin (superuser), a
member (signed in, not an admin of the pipeline), an outsider (a disabled account or a token
nobody issued), anonymous, and the build token of another build.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt as pyjwt
import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from builds.models import Build, BuildStatus, Step
from conftest import GitRepo
from pipelines.models import Event, Job, Pipeline
from pipelines.services import Creator, create_pipeline, create_user_token, start_event
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml, sha_of
from screwdriver_site.api.tokens import issue_user_token
from screwdriver_site.tokens import issue_build_token

pytestmark = pytest.mark.django_db

MakeRepo = Callable[..., GitRepo]

CHAIN = """
shared:
  image: node:18
jobs:
  main:
    requires: [~commit]
    steps:
      - hello: echo hello
      - world: echo world
  publish:
    requires: [main]
    steps:
      - publish: echo publish
"""


def wide(jobs: int) -> str:
    """A screwdriver.yaml whose ~commit starts `jobs` jobs at once."""
    body = "".join(
        f"  job{i}:\n    requires: [~commit]\n    steps:\n      - s1: echo 1\n      - s2: echo 2\n"
        for i in range(jobs)
    )
    return f"shared:\n  image: node:18\njobs:\n{body}"


@pytest.fixture(autouse=True)
def _no_hook_delivery(settings: Any) -> None:
    # Installed hooks post to SD_API_URL; a closed port keeps pushes from reaching any server.
    settings.SD_API_URL = "http://127.0.0.1:9"


@pytest.fixture
def superuser() -> User:
    return User.objects.create_superuser(username="root")


@pytest.fixture
def repo(make_repo: MakeRepo) -> GitRepo:
    return make_repo({"screwdriver.yaml": CHAIN})


@pytest.fixture
def pipeline(request: pytest.FixtureRequest, owner: User) -> Pipeline:
    """The owner's pipeline: on a real repository for a test marked `git`, else without git."""
    if request.node.get_closest_marker("git") is None:
        return pipeline_from_yaml(CHAIN, owner=owner)
    repo: GitRepo = request.getfixturevalue("repo")
    return create_pipeline(checkout_url=repo.checkout_url, user=owner)


def new_event(pipeline: Pipeline) -> Event:
    if pipeline.last_seen_sha == sha_of(CHAIN):
        return event_from_yaml(pipeline, CHAIN)
    return start_event(pipeline=pipeline, start_from="~commit", creator=Creator("Alice", "alice"))


@pytest.fixture
def event(pipeline: Pipeline) -> Event:
    return new_event(pipeline)


@pytest.fixture
def build(event: Event) -> Build:
    return Build.objects.select_related("job__pipeline", "event").get(event=event, job__name="main")


@pytest.fixture
def other_build(pipeline: Pipeline, event: Event) -> Build:
    """The first build of a second event: its token must not reach `build`."""
    return Build.objects.select_related("job__pipeline", "event").get(
        event=new_event(pipeline), job__name="main"
    )


def as_user(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def with_bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def as_build(build: Build, **kwargs: Any) -> APIClient:
    return with_bearer(issue_build_token(build, **kwargs))


def assert_error(response: Any, status: int) -> dict[str, Any]:
    """Screwdriver's error shape: {statusCode, error, message}, and nothing else."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"statusCode", "error", "message"}
    assert body["statusCode"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    return body


def endpoints(pipeline: Pipeline, event: Event, build: Build) -> list[tuple[str, str, Any]]:
    """Every /v4 endpoint but status and the signed webhook, with a plausible body."""
    job = build.job_id
    b = f"/v4/builds/{build.pk}"
    step = f"{b}/steps/hello"
    return [
        ("get", "/v4/auth/token", {}),
        ("get", "/v4/pipelines", {}),
        ("post", "/v4/pipelines", {"checkoutUrl": "/srv/other.git#main"}),
        ("get", f"/v4/pipelines/{pipeline.pk}", {}),
        ("get", f"/v4/pipelines/{pipeline.pk}/jobs", {}),
        ("get", f"/v4/pipelines/{pipeline.pk}/events", {}),
        ("get", f"/v4/jobs/{job}", {}),
        ("get", f"/v4/jobs/{job}/builds", {}),
        ("post", "/v4/events", {"pipelineId": pipeline.pk, "startFrom": "main"}),
        ("get", f"/v4/events/{event.pk}", {}),
        ("get", f"/v4/events/{event.pk}/builds", {}),
        ("put", f"/v4/events/{event.pk}/stop", {}),
        ("post", "/v4/validator", {"yaml": CHAIN}),
        ("get", b, {}),
        ("put", b, {"status": "ABORTED"}),
        ("get", f"{b}/launch", {}),
        ("post", f"{b}/launch", {}),
        ("post", f"{b}/heartbeat", {}),
        ("get", f"{b}/steps", {}),
        ("get", step, {}),
        ("put", f"{b}/steps", [{"name": "hello", "code": 0}]),
        ("put", step, {"code": 0}),
        ("get", f"{step}/logs", {}),
        ("post", f"{step}/logs", {"seq": 0, "firstLine": 0, "lines": [{"t": 1, "m": "x"}]}),
    ]


def call(client: APIClient, method: str, url: str, body: Any) -> Any:
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, body, format="json")


def assert_absent_not_null(data: Any) -> None:
    """Screwdriver leaves empty optional fields out; it never sends null."""
    if isinstance(data, dict):
        for key, value in data.items():
            assert value is not None, f"{key} is null"
    elif isinstance(data, list):
        for item in data:
            assert_absent_not_null(item)


def assert_utc_iso(text: str) -> datetime:
    assert isinstance(text, str) and text.endswith("Z"), text
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.utcoffset() == timedelta(0)
    return moment


# --- anonymous, outsiders and tokens --------------------------------------------------------


def test_status_answers_ok_to_anyone() -> None:
    response = APIClient().get("/v4/status")

    assert response.status_code == 200


def test_status_answers_ok_even_with_a_bad_token() -> None:
    assert with_bearer("nonsense").get("/v4/status").status_code == 200


def test_every_other_endpoint_refuses_anonymous_callers(
    pipeline: Pipeline, event: Event, build: Build
) -> None:
    for method, url, body in endpoints(pipeline, event, build):
        response = call(APIClient(), method, url, body)
        assert response.status_code == 401, f"{method} {url} gave {response.status_code}"
        assert_error(response, 401)
    assert Event.objects.count() == 1
    assert Build.objects.get(pk=build.pk).status == BuildStatus.QUEUED


def test_an_outsider_with_a_token_nobody_issued_is_refused(pipeline: Pipeline) -> None:
    body = assert_error(with_bearer("not-a-real-token").get("/v4/pipelines"), 401)

    assert "create a new one" in body["message"]


def test_an_outsider_with_a_jwt_signed_by_another_key_is_refused(pipeline: Pipeline) -> None:
    now = int(timezone.now().timestamp())
    forged = pyjwt.encode(
        {"username": "alice", "scope": ["user", "admin"], "iat": now, "exp": now + 600},
        "another-server's-secret-key-of-some-length",
        algorithm="HS256",
    )

    assert_error(with_bearer(forged).get("/v4/pipelines"), 401)


def test_a_disabled_account_cannot_use_its_token(owner: User, pipeline: Pipeline) -> None:
    token = create_user_token(user=owner, name="laptop").value
    owner.is_active = False
    owner.save()

    assert_error(with_bearer(token).get("/v4/pipelines"), 401)
    assert_error(APIClient().get(f"/v4/auth/token?api_token={token}"), 401)


def test_an_api_token_authenticates_as_its_user(owner: User, pipeline: Pipeline) -> None:
    token = create_user_token(user=owner, name="laptop")

    response = with_bearer(token.value).get(f"/v4/pipelines/{pipeline.pk}")

    assert response.status_code == 200
    assert response.json()["id"] == pipeline.pk
    token.token.refresh_from_db()
    assert token.token.last_used is not None


def test_a_token_used_again_within_a_minute_is_not_written_again(
    owner: User, pipeline: Pipeline
) -> None:
    token = create_user_token(user=owner, name="script")
    with time_machine.travel("2026-12-05 10:00:00+00:00", tick=False):
        with_bearer(token.value).get(f"/v4/pipelines/{pipeline.pk}")
    with (
        time_machine.travel("2026-12-05 10:00:59+00:00", tick=False),
        CaptureQueriesContext(connection) as again,
    ):
        assert with_bearer(token.value).get(f"/v4/pipelines/{pipeline.pk}").status_code == 200
    token.token.refresh_from_db()
    assert token.token.last_used == datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    assert not [q for q in again.captured_queries if q["sql"].startswith("UPDATE")]

    with time_machine.travel("2026-12-05 10:01:01+00:00", tick=False):
        with_bearer(token.value).get(f"/v4/pipelines/{pipeline.pk}")
    token.token.refresh_from_db()
    assert token.token.last_used == datetime(2026, 12, 5, 10, 1, 1, tzinfo=UTC)


@pytest.mark.git
def test_an_api_token_is_exchanged_for_a_jwt_that_authenticates(
    owner: User, pipeline: Pipeline, event: Event
) -> None:
    value = create_user_token(user=owner, name="laptop").value

    exchanged = APIClient().get("/v4/auth/token", {"api_token": value})

    assert exchanged.status_code == 200
    jwt = exchanged.json()["token"]
    assert jwt.count(".") == 2
    client = with_bearer(jwt)
    assert client.get(f"/v4/pipelines/{pipeline.pk}/events").status_code == 200
    # The JWT carries the owner's rights: she may start events of her pipeline.
    started = client.post(
        "/v4/events", {"pipelineId": pipeline.pk, "startFrom": "main"}, format="json"
    )
    assert started.status_code == 201, started.content


def test_an_expired_jwt_is_refused(owner: User, pipeline: Pipeline) -> None:
    old = issue_user_token(username="alice", is_admin=False, now=timezone.now() - timedelta(days=1))

    assert_error(with_bearer(old).get("/v4/pipelines"), 401)


def test_a_build_token_can_read_its_own_build(build: Build) -> None:
    client = as_build(build)

    assert client.get(f"/v4/builds/{build.pk}").json()["id"] == build.pk
    assert client.get(f"/v4/builds/{build.pk}/steps").status_code == 200
    assert client.get(f"/v4/builds/{build.pk}/steps/hello").status_code == 200
    assert client.get(f"/v4/builds/{build.pk}/steps/hello/logs").status_code == 200


def test_a_build_token_cannot_touch_another_build(build: Build, other_build: Build) -> None:
    client = as_build(other_build)
    b = f"/v4/builds/{build.pk}"

    for method, url, body in [
        ("get", b, {}),
        ("put", b, {"status": "RUNNING"}),
        ("put", b, {"status": "ABORTED"}),
        ("get", f"{b}/launch", {}),
        ("post", f"{b}/launch", {}),
        ("post", f"{b}/heartbeat", {}),
        ("get", f"{b}/steps", {}),
        ("get", f"{b}/steps/hello", {}),
        ("put", f"{b}/steps", [{"name": "hello", "code": 0}]),
        ("put", f"{b}/steps/hello", {"code": 0}),
        ("get", f"{b}/steps/hello/logs", {}),
        (
            "post",
            f"{b}/steps/hello/logs",
            {"seq": 0, "firstLine": 0, "lines": [{"t": 1, "m": "x"}]},
        ),
    ]:
        response = call(client, method, url, body)
        assert response.status_code == 403, f"{method} {url} gave {response.status_code}"
        assert_error(response, 403)
    build.refresh_from_db()
    assert build.status == BuildStatus.QUEUED
    assert Step.objects.get(build=build, name="hello").code is None
    assert Step.objects.get(build=build, name="hello").lines == 0


def test_a_build_token_cannot_change_anything_of_its_pipeline_but_its_build(
    pipeline: Pipeline, event: Event, build: Build, other_build: Build
) -> None:
    client = as_build(other_build)
    writes = [
        e
        for e in endpoints(pipeline, event, build)
        if e[0] != "get" and not e[1].startswith(("/v4/builds/", "/v4/validator"))
    ]

    for method, url, body in writes:
        response = call(client, method, url, body)
        assert response.status_code in {401, 403}, f"{method} {url} gave {response.status_code}"
    assert Event.objects.count() == 2


def test_a_build_token_cannot_get_a_user_token(build: Build) -> None:
    response = as_build(build).get("/v4/auth/token")

    assert response.status_code in {401, 403}
    assert "token" not in response.json()


def test_an_expired_build_token_is_refused(build: Build) -> None:
    long_ago = timezone.now() - timedelta(days=2)

    assert_error(as_build(build, now=long_ago).get(f"/v4/builds/{build.pk}/launch"), 401)


def test_people_cannot_call_the_launcher_endpoints(owner: User, build: Build) -> None:
    client = as_user(owner)
    b = f"/v4/builds/{build.pk}"

    assert_error(client.get(f"{b}/launch"), 403)
    assert_error(client.post(f"{b}/heartbeat"), 403)
    assert_error(client.put(f"{b}/steps/hello", {"code": 0}, format="json"), 403)
    assert_error(
        client.post(
            f"{b}/steps/hello/logs",
            {"seq": 0, "firstLine": 0, "lines": [{"t": 1, "m": "fake"}]},
            format="json",
        ),
        403,
    )


# --- members and admins ---------------------------------------------------------------------


def test_a_member_can_read_everything(
    member: User, pipeline: Pipeline, event: Event, build: Build
) -> None:
    client = as_user(member)

    for url in [
        "/v4/pipelines",
        f"/v4/pipelines/{pipeline.pk}",
        f"/v4/pipelines/{pipeline.pk}/jobs",
        f"/v4/pipelines/{pipeline.pk}/events",
        f"/v4/jobs/{build.job_id}",
        f"/v4/jobs/{build.job_id}/builds",
        f"/v4/events/{event.pk}",
        f"/v4/events/{event.pk}/builds",
        f"/v4/builds/{build.pk}",
        f"/v4/builds/{build.pk}/steps",
        f"/v4/builds/{build.pk}/steps/hello/logs",
    ]:
        assert client.get(url).status_code == 200, url


def test_a_member_cannot_start_an_event(member: User, pipeline: Pipeline) -> None:
    response = as_user(member).post(
        "/v4/events", {"pipelineId": pipeline.pk, "startFrom": "main"}, format="json"
    )

    body = assert_error(response, 403)
    assert f"You need push rights on pipeline {pipeline.pk}" in body["message"]
    assert not Event.objects.filter(pipeline=pipeline).exists()


def test_a_member_cannot_stop_an_event(member: User, event: Event, build: Build) -> None:
    assert_error(as_user(member).put(f"/v4/events/{event.pk}/stop"), 403)

    assert Build.objects.get(pk=build.pk).status == BuildStatus.QUEUED


def test_a_member_cannot_abort_a_build(member: User, build: Build) -> None:
    response = as_user(member).put(f"/v4/builds/{build.pk}", {"status": "ABORTED"}, format="json")

    assert_error(response, 403)
    assert Build.objects.get(pk=build.pk).status == BuildStatus.QUEUED


@pytest.mark.git
def test_the_owner_starts_an_event_from_a_job(owner: User, pipeline: Pipeline) -> None:
    response = as_user(owner).post(
        "/v4/events",
        {"pipelineId": pipeline.pk, "startFrom": "publish", "causeMessage": "ship it"},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["startFrom"] == "publish"
    assert body["causeMessage"] == "ship it"
    assert body["creator"] == {"name": "Alice", "username": "alice"}
    builds = as_user(owner).get(f"/v4/events/{body['id']}/builds").json()
    assert [b["status"] for b in builds] == ["QUEUED"]


def test_a_server_admin_may_act_on_any_pipeline(
    superuser: User, event: Event, build: Build
) -> None:
    client = as_user(superuser)

    aborted = client.put(f"/v4/builds/{build.pk}", {"status": "ABORTED"}, format="json")

    assert aborted.status_code == 200, aborted.content
    assert aborted.json()["status"] == "ABORTED"
    assert aborted.json()["statusMessage"] == "Aborted by root"


def test_the_owner_stops_an_event_and_its_builds_are_aborted(
    owner: User, event: Event, build: Build
) -> None:
    response = as_user(owner).put(f"/v4/events/{event.pk}/stop")

    assert response.status_code == 200
    assert response.json()["status"] == "ABORTED"
    assert Build.objects.get(pk=build.pk).status == BuildStatus.ABORTED


def test_a_person_cannot_report_a_build_status(owner: User, build: Build) -> None:
    client = as_user(owner)

    for status in ("SUCCESS", "RUNNING", "FAILURE"):
        response = client.put(f"/v4/builds/{build.pk}", {"status": status}, format="json")
        assert_error(response, 403)
    assert Build.objects.get(pk=build.pk).status == BuildStatus.QUEUED


def test_aborting_a_finished_build_is_a_conflict(owner: User, build: Build) -> None:
    Build.objects.filter(pk=build.pk).update(status=BuildStatus.SUCCESS)

    body = assert_error(
        as_user(owner).put(f"/v4/builds/{build.pk}", {"status": "ABORTED"}, format="json"), 409
    )
    assert "SUCCESS" in body["message"]


# --- errors in Screwdriver's shape ----------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["not a url", "relative/path.git#main", "/no/such/repo.git#main", "ftp://x/y.git"]
)
def test_creating_a_pipeline_from_a_bad_url_is_a_bad_request(member: User, url: str) -> None:
    response = as_user(member).post("/v4/pipelines", {"checkoutUrl": url}, format="json")

    assert_error(response, 400)
    assert response.json()["error"] == "Bad Request"
    assert not Pipeline.objects.exists()


def test_creating_a_pipeline_without_a_url_names_the_missing_field(member: User) -> None:
    body = assert_error(as_user(member).post("/v4/pipelines", {}, format="json"), 400)

    assert "checkoutUrl" in body["message"]


def test_creating_a_pipeline_makes_its_creator_the_admin(member: User, repo: GitRepo) -> None:
    response = as_user(member).post(
        "/v4/pipelines", {"checkoutUrl": repo.checkout_url}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["admins"] == {"bob": True}
    assert body["scmRepo"]["branch"] == "main"
    jobs = as_user(member).get(f"/v4/pipelines/{body['id']}/jobs").json()
    assert [j["name"] for j in jobs] == ["main", "publish"]


@pytest.mark.git
def test_creating_the_same_pipeline_twice_is_a_conflict(
    member: User, repo: GitRepo, pipeline: Pipeline
) -> None:
    for url in (repo.checkout_url, f"file://{repo.bare}#main"):
        response = as_user(member).post("/v4/pipelines", {"checkoutUrl": url}, format="json")
        body = assert_error(response, 409)
        assert "already exists" in body["message"]
    assert Pipeline.objects.count() == 1


@pytest.mark.git
def test_starting_an_event_from_an_unknown_job_is_not_found(
    owner: User, pipeline: Pipeline
) -> None:
    response = as_user(owner).post(
        "/v4/events", {"pipelineId": pipeline.pk, "startFrom": "nope"}, format="json"
    )

    body = assert_error(response, 404)
    assert "nope" in body["message"]
    assert not Event.objects.exists()


def test_starting_an_event_of_an_unknown_pipeline_is_not_found(owner: User) -> None:
    response = as_user(owner).post(
        "/v4/events", {"pipelineId": 9999, "startFrom": "main"}, format="json"
    )

    assert_error(response, 404)


def test_unknown_objects_are_not_found_in_screwdriver_shape(owner: User) -> None:
    client = as_user(owner)

    for url in ["/v4/pipelines/9999", "/v4/jobs/9999", "/v4/events/9999", "/v4/builds/9999"]:
        assert_error(client.get(url), 404)


def test_the_validator_needs_the_file_as_a_string(owner: User) -> None:
    assert_error(as_user(owner).post("/v4/validator", {"yaml": 5}, format="json"), 400)


# --- shapes ---------------------------------------------------------------------------------


def test_times_are_iso_8601_utc_strings(owner: User, pipeline: Pipeline, build: Build) -> None:
    client = as_user(owner)
    Build.objects.filter(pk=build.pk).update(status=BuildStatus.RUNNING, start_time=timezone.now())
    Step.objects.filter(build=build, name="hello").update(start_time=timezone.now())

    moments = [
        client.get(f"/v4/pipelines/{pipeline.pk}").json()["createTime"],
        client.get(f"/v4/events/{build.event_id}").json()["createTime"],
        client.get(f"/v4/builds/{build.pk}").json()["createTime"],
        client.get(f"/v4/builds/{build.pk}").json()["startTime"],
        client.get(f"/v4/builds/{build.pk}/steps/hello").json()["startTime"],
    ]

    for text in moments:
        assert abs(assert_utc_iso(text) - timezone.now()) < timedelta(minutes=5)


def test_empty_fields_are_left_out_instead_of_null(
    owner: User, pipeline: Pipeline, event: Event, build: Build
) -> None:
    client = as_user(owner)
    shown = {
        "pipeline": client.get(f"/v4/pipelines/{pipeline.pk}").json(),
        "jobs": client.get(f"/v4/pipelines/{pipeline.pk}/jobs").json(),
        "event": client.get(f"/v4/events/{event.pk}").json(),
        "build": client.get(f"/v4/builds/{build.pk}").json(),
        "builds": client.get(f"/v4/events/{event.pk}/builds").json(),
    }

    assert_absent_not_null(shown)
    for item in [
        shown["pipeline"],
        *shown["jobs"],
        shown["event"],
        shown["build"],
        *shown["builds"],
    ]:
        assert_absent_not_null(item)
    for step in shown["build"]["steps"]:
        assert_absent_not_null(step)
    assert "prNum" not in shown["event"] and "parentEventId" not in shown["event"]
    for key in ("startTime", "endTime", "parentBuildId", "statusMessage"):
        assert key not in shown["build"]
    assert all("code" not in s and "endTime" not in s for s in shown["build"]["steps"])
    assert shown["event"]["groupEventId"] == event.pk


def test_fields_are_screwdriver_camel_case(owner: User, build: Build) -> None:
    body = as_user(owner).get(f"/v4/builds/{build.pk}").json()

    assert {"id", "jobId", "eventId", "number", "sha", "status", "createTime", "steps"} <= set(body)
    assert [s["name"] for s in body["steps"]] == [
        "sd-setup-scm",
        "hello",
        "world",
        "sd-teardown-artifacts",
    ]
    assert body["steps"][1]["command"] == "echo hello"


# --- the launcher's calls, end to end with the build token ----------------------------------


@pytest.mark.git
def test_a_launcher_runs_a_build_through_the_api_with_its_token(
    owner: User, pipeline: Pipeline, event: Event, build: Build
) -> None:
    launcher = as_build(build)
    b = f"/v4/builds/{build.pk}"

    spec = launcher.get(f"{b}/launch").json()
    assert spec["build"]["id"] == build.pk
    assert [s["name"] for s in spec["steps"]] == ["hello", "world"]
    assert spec["artifacts"] == {
        "step": "sd-teardown-artifacts",
        "maxFileBytes": 1024**3,
        "maxBuildBytes": 5 * 1024**3,
    }
    assert ["SD_BUILD_ID", str(build.pk)] in spec["environment"]
    assert spec["checkout"]["sha"] == event.sha

    running = launcher.put(b, {"status": "RUNNING"}, format="json")
    assert running.status_code == 200 and running.json()["status"] == "RUNNING"
    assert launcher.post(f"{b}/heartbeat").json() == {"status": "RUNNING"}

    for step in ("sd-setup-scm", "hello", "world"):
        started = launcher.put(
            f"{b}/steps/{step}", {"startTime": "2024-05-01T10:00:00Z"}, format="json"
        )
        assert started.status_code == 200
    sent: list[dict[str, Any]] = [
        {"t": 1714557600000, "m": "hello"},
        {"t": 1714557600001, "b": base64.b64encode(b"bytes \xff").decode()},
    ]
    batch = {"seq": 0, "firstLine": 0, "lines": sent}
    assert launcher.post(f"{b}/steps/hello/logs", batch, format="json").status_code == 201
    resent = launcher.post(f"{b}/steps/hello/logs", batch, format="json")
    assert resent.status_code == 200 and resent.json()["stored"] is False
    grown = {**batch, "lines": [*sent, {"t": 1714557600002, "m": "late"}]}
    conflict = launcher.post(f"{b}/steps/hello/logs", grown, format="json")
    assert conflict.status_code == 409
    assert "a resend must carry the same lines" in conflict.json()["message"]
    for step in ("sd-setup-scm", "hello", "world"):
        ended = launcher.put(
            f"{b}/steps/{step}", {"endTime": "2024-05-01T10:00:05Z", "code": 0}, format="json"
        )
        assert ended.json()["code"] == 0

    done = launcher.put(b, {"status": "SUCCESS", "meta": {"version": "7"}}, format="json")
    assert done.status_code == 200, done.content
    assert done.json()["status"] == "SUCCESS"
    assert launcher.post(f"{b}/heartbeat").json() == {"status": "SUCCESS"}

    people = as_user(owner)
    logs = people.get(f"{b}/steps/hello/logs")
    assert logs["X-More-Data"] == "false"
    assert logs.json() == [
        {"n": 0, "t": 1714557600000, "m": "hello", "s": "hello"},
        {"n": 1, "t": 1714557600001, "m": "bytes \ufffd", "s": "hello"},
    ]
    step = people.get(f"{b}/steps/hello").json()
    assert step["lines"] == 2 and step["endTime"] == "2024-05-01T10:00:05.000Z"
    after = people.get(f"/v4/events/{event.pk}/builds").json()
    assert [(x["status"], x.get("parentBuildId")) for x in after] == [
        ("SUCCESS", None),
        ("QUEUED", build.pk),
    ]
    assert people.get(f"/v4/events/{event.pk}").json()["meta"] == {"version": "7"}


def test_a_launchers_post_of_its_launch_marks_it_running_once_and_returns_the_spec(
    owner: User, build: Build
) -> None:
    launcher = as_build(build)
    b = f"/v4/builds/{build.pk}"

    started = launcher.post(f"{b}/launch", {}, format="json")

    assert started.status_code == 200, started.content
    assert started.json() == launcher.get(f"{b}/launch").json()
    build.refresh_from_db()
    assert build.status == BuildStatus.RUNNING
    assert build.start_time is not None and build.lease_expires_at is not None
    # A second start (a resend that had landed, or a build stopped meanwhile) is refused.
    assert (
        "RUNNING" in assert_error(launcher.post(f"{b}/launch", {}, format="json"), 409)["message"]
    )
    assert_error(as_user(owner).post(f"{b}/launch", {}, format="json"), 403)


def test_a_launcher_cannot_start_a_build_stopped_before_it_ran(build: Build) -> None:
    as_build(build).put(f"/v4/builds/{build.pk}", {"status": "ABORTED"}, format="json")

    # Its token may only report teardown now, as for the spec's GET.
    assert_error(as_build(build).post(f"/v4/builds/{build.pk}/launch", {}, format="json"), 403)
    assert Build.objects.get(pk=build.pk).status == BuildStatus.ABORTED


def test_a_launcher_cannot_finish_a_build_it_never_started(build: Build) -> None:
    response = as_build(build).put(f"/v4/builds/{build.pk}", {"status": "SUCCESS"}, format="json")

    body = assert_error(response, 409)
    assert "QUEUED" in body["message"]


def test_a_launchers_final_status_records_the_steps_it_carries_even_when_refused(
    build: Build,
) -> None:
    launcher = as_build(build)
    b = f"/v4/builds/{build.pk}"
    steps = [
        {"name": "hello", "startTime": "2024-05-01T10:00:00Z"},
        {"name": "no-such-step", "code": 1},
        {"name": "hello", "endTime": "2024-05-01T10:00:05Z", "code": 3},
    ]

    # Not started yet: the status is refused, the steps' reports are not.
    refused = launcher.put(b, {"status": "SUCCESS", "steps": steps}, format="json")
    assert_error(refused, 409)
    hello = Step.objects.get(build=build, name="hello")
    assert (hello.code, hello.end_time) == (3, datetime(2024, 5, 1, 10, 0, 5, tzinfo=UTC))
    assert hello.start_time == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)

    assert launcher.put(b, {"status": "RUNNING"}, format="json").status_code == 200
    steps = [{"name": "world", "endTime": "2024-05-01T10:00:06Z", "code": 0}]
    done = launcher.put(b, {"status": "FAILURE", "steps": steps}, format="json")
    assert done.status_code == 200
    assert [(s["name"], s.get("code")) for s in done.json()["steps"]][1:3] == [
        ("hello", 3),
        ("world", 0),
    ]


def test_a_launcher_reports_several_steps_in_one_request_in_order(build: Build) -> None:
    launcher = as_build(build)
    url = f"/v4/builds/{build.pk}/steps"
    first = [
        {"name": "hello", "startTime": "2024-05-01T10:00:00Z"},
        {"name": "hello", "endTime": "2024-05-01T10:00:01Z", "code": 0},
        {"name": "world", "startTime": "2024-05-01T10:00:01Z"},
    ]

    answer = launcher.put(url, first, format="json")

    assert answer.status_code == 200, answer.content
    assert [(s["name"], s.get("code"), s.get("endTime")) for s in answer.json()] == [
        ("hello", 0, "2024-05-01T10:00:01.000Z"),
        ("world", None, None),
    ]
    # The end of a step whose start went in an earlier request.
    later = [{"name": "world", "endTime": "2024-05-01T10:00:02Z", "code": 3}]
    assert launcher.put(url, later, format="json").status_code == 200
    hello = Step.objects.get(build=build, name="hello")
    world = Step.objects.get(build=build, name="world")
    assert (hello.start_time, hello.end_time, hello.code) == (
        datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        datetime(2024, 5, 1, 10, 0, 1, tzinfo=UTC),
        0,
    )
    assert (world.start_time, world.end_time, world.code) == (
        datetime(2024, 5, 1, 10, 0, 1, tzinfo=UTC),
        datetime(2024, 5, 1, 10, 0, 2, tzinfo=UTC),
        3,
    )
    # Reports of one step in one request apply in the order sent: the last word wins.
    twice = [{"name": "world", "code": 1}, {"name": "world", "code": 4}]
    assert launcher.put(url, twice, format="json").json()[0]["code"] == 4


def test_a_resent_list_of_step_reports_changes_nothing(build: Build) -> None:
    launcher = as_build(build)
    url = f"/v4/builds/{build.pk}/steps"
    reports = [
        {"name": "hello", "startTime": "2024-05-01T10:00:00Z"},
        {"name": "hello", "endTime": "2024-05-01T10:00:01Z", "code": 0},
    ]
    first = launcher.put(url, reports, format="json")
    before = list(Step.objects.filter(build=build).values().order_by("position"))

    again = launcher.put(url, reports, format="json")

    assert again.status_code == 200
    assert again.json() == first.json()
    assert list(Step.objects.filter(build=build).values().order_by("position")) == before


def test_a_list_of_step_reports_naming_a_step_the_build_lacks_records_nothing(
    build: Build,
) -> None:
    launcher = as_build(build)
    reports = [{"name": "hello", "code": 0}, {"name": "no-such-step", "code": 1}]

    response = launcher.put(f"/v4/builds/{build.pk}/steps", reports, format="json")

    assert "no-such-step" in assert_error(response, 404)["message"]
    assert Step.objects.get(build=build, name="hello").code is None
    # As the one-step route answers for that name.
    assert_error(
        launcher.put(f"/v4/builds/{build.pk}/steps/no-such-step", {"code": 1}, format="json"),
        404,
    )


def test_a_bad_list_of_step_reports_is_a_bad_request(build: Build) -> None:
    launcher = as_build(build)
    url = f"/v4/builds/{build.pk}/steps"

    for body, words in [
        ({"name": "hello", "code": 0}, "list"),
        ([{"code": 0}], "name"),
        ([{"name": "hello", "code": "zero"}], "code"),
        ([{"name": "hello", "code": 999}], "code"),
        ([{"name": "hello", "startTime": "yesterday"}], "startTime"),
        ([{"name": "x" * 65, "code": 0}], "name"),
        ([{"name": "hello", "code": 0}] * 1001, "1000"),
        ("hello", "list"),
    ]:
        message = assert_error(launcher.put(url, body, format="json"), 400)["message"]
        assert words in message, (body, message)
    assert Step.objects.get(build=build, name="hello").code is None


def test_people_and_other_builds_cannot_report_a_builds_steps(
    owner: User, build: Build, other_build: Build
) -> None:
    url = f"/v4/builds/{build.pk}/steps"
    reports = [{"name": "hello", "code": 0}]

    assert_error(as_user(owner).put(url, reports, format="json"), 403)
    assert_error(as_build(other_build).put(url, reports, format="json"), 403)
    assert Step.objects.get(build=build, name="hello").code is None


def test_an_ended_builds_launcher_reports_teardown_steps_in_a_list_for_a_while(
    build: Build,
) -> None:
    Build.objects.filter(pk=build.pk).update(
        status=BuildStatus.ABORTED, end_time=timezone.now() - timedelta(minutes=1)
    )
    launcher = as_build(build)
    url = f"/v4/builds/{build.pk}/steps"

    taken = launcher.put(url, [{"name": "world", "code": 143}], format="json")
    assert taken.status_code == 200, taken.content

    Build.objects.filter(pk=build.pk).update(end_time=timezone.now() - timedelta(minutes=6))
    assert_error(launcher.put(url, [{"name": "hello", "code": 1}], format="json"), 403)
    assert Step.objects.get(build=build, name="hello").code is None
    assert Step.objects.get(build=build, name="world").code == 143


def test_only_a_launcher_reports_steps_with_a_status(owner: User, build: Build) -> None:
    steps = [{"name": "hello", "code": 0}]

    response = as_user(owner).put(
        f"/v4/builds/{build.pk}", {"status": "ABORTED", "steps": steps}, format="json"
    )

    assert_error(response, 403)
    assert Step.objects.get(build=build, name="hello").code is None
    assert Build.objects.get(pk=build.pk).status == BuildStatus.QUEUED


def test_a_launcher_may_abort_its_own_build(build: Build) -> None:
    response = as_build(build).put(f"/v4/builds/{build.pk}", {"status": "ABORTED"}, format="json")

    assert response.status_code == 200
    assert Build.objects.get(pk=build.pk).status == BuildStatus.ABORTED


def test_a_bad_log_batch_is_a_bad_request(build: Build) -> None:
    client = as_build(build)
    url = f"/v4/builds/{build.pk}/steps/hello/logs"

    for batch in [
        {"seq": 0, "firstLine": 0, "lines": []},
        {"seq": 0, "firstLine": 0, "lines": [{"t": 1, "m": "a\nb"}]},
        {"seq": 0, "firstLine": 0, "lines": [{"t": 1, "b": "%%%"}]},
        {"seq": -1, "firstLine": 0, "lines": [{"t": 1, "m": "a"}]},
    ]:
        assert_error(client.post(url, batch, format="json"), 400)
    assert Step.objects.get(build=build, name="hello").lines == 0


def test_a_build_token_cannot_change_its_build_long_after_it_ended(build: Build) -> None:
    Build.objects.filter(pk=build.pk).update(
        status=BuildStatus.SUCCESS, end_time=timezone.now() - timedelta(hours=1)
    )
    client = as_build(build)
    b = f"/v4/builds/{build.pk}"

    assert_error(client.get(f"{b}/launch"), 403)
    assert_error(client.put(f"{b}/steps/hello", {"code": 1}, format="json"), 403)
    assert_error(
        client.post(
            f"{b}/steps/hello/logs",
            {"seq": 0, "firstLine": 0, "lines": [{"t": 1, "m": "late"}]},
            format="json",
        ),
        403,
    )


# --- query counts ---------------------------------------------------------------------------


def test_a_log_batch_after_the_first_is_stored_in_nine_queries(build: Build) -> None:
    client = as_build(build)
    url = f"/v4/builds/{build.pk}/steps/hello/logs"
    first = client.post(url, {"seq": 0, "firstLine": 0, "lines": [{"t": 1, "m": "a"}]}, "json")
    assert first.status_code == 201, first.content

    with CaptureQueriesContext(connection) as captured:
        second = client.post(
            url, {"seq": 1, "firstLine": 1, "lines": [{"t": 2, "m": "b"}]}, format="json"
        )

    assert second.status_code == 201, second.content
    # The build's status (the token), the step with its build, then in a savepoint here (a
    # transaction in production): the step locked, the last batch, the build's log bytes,
    # the insert and the step's counts.
    assert len(captured) == 9, [query["sql"][:80] for query in captured]


def queries_of(client: APIClient, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured)


def test_listing_events_takes_the_same_queries_for_few_and_many(
    owner: User, make_repo: MakeRepo, django_assert_max_num_queries: Any
) -> None:
    client = as_user(owner)
    few = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": CHAIN}, "few").checkout_url, user=owner
    )
    many = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": CHAIN}, "many").checkout_url, user=owner
    )
    new_event(few)
    for _ in range(3):
        new_event(many)
    first = Event.objects.filter(pipeline=many).first()
    assert first is not None
    Event.objects.bulk_create(
        Event(
            pipeline=many,
            parent_event=first,
            sha=first.sha,
            start_from="~commit",
            commit=first.commit,
            creator=first.creator,
            workflow_graph=first.workflow_graph,
            status=Event.Status.SUCCESS,
        )
        for _ in range(30)
    )

    small = queries_of(client, f"/v4/pipelines/{few.pk}/events")
    with django_assert_max_num_queries(small):
        response = client.get(f"/v4/pipelines/{many.pk}/events")
    assert len(response.json()) == 33


def test_listing_an_events_builds_takes_the_same_queries_for_few_and_many(
    owner: User, make_repo: MakeRepo, django_assert_max_num_queries: Any
) -> None:
    client = as_user(owner)
    few = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": wide(1)}, "few").checkout_url, user=owner
    )
    many = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": wide(15)}, "many").checkout_url, user=owner
    )
    few_event, many_event = new_event(few), new_event(many)

    small = queries_of(client, f"/v4/events/{few_event.pk}/builds")
    with django_assert_max_num_queries(small):
        response = client.get(f"/v4/events/{many_event.pk}/builds")
    assert len(response.json()) == 15
    assert all(len(b["steps"]) == 4 for b in response.json())


def test_listing_a_jobs_builds_takes_the_same_queries_for_few_and_many(
    owner: User, pipeline: Pipeline, django_assert_max_num_queries: Any
) -> None:
    client = as_user(owner)
    new_event(pipeline)
    job = Job.objects.get(pipeline=pipeline, name="main")
    small = queries_of(client, f"/v4/jobs/{job.pk}/builds")
    for _ in range(8):
        new_event(pipeline)

    with django_assert_max_num_queries(small):
        response = client.get(f"/v4/jobs/{job.pk}/builds")
    assert len(response.json()) == 9


def test_listing_pipelines_and_jobs_takes_the_same_queries_for_few_and_many(
    owner: User, make_repo: MakeRepo, django_assert_max_num_queries: Any
) -> None:
    client = as_user(owner)
    few = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": wide(1)}, "few").checkout_url, user=owner
    )
    small_list = queries_of(client, "/v4/pipelines")
    small_jobs = queries_of(client, f"/v4/pipelines/{few.pk}/jobs")
    many = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": wide(12)}, "many").checkout_url, user=owner
    )
    for i in range(5):
        create_pipeline(
            checkout_url=make_repo({"screwdriver.yaml": CHAIN}, f"more{i}").checkout_url, user=owner
        )

    with django_assert_max_num_queries(small_list):
        assert len(client.get("/v4/pipelines").json()) == 7
    with django_assert_max_num_queries(small_jobs):
        assert len(client.get(f"/v4/pipelines/{many.pk}/jobs").json()) == 12
