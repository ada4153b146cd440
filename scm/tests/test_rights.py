"""Rights on GitHub pipelines from each person's own GitHub token, recorded and cached.

GitHub's REST API is answered at the HTTP boundary by respx; the clock is moved with
time-machine. Everything else (permission checks, the API, the UI) is the real thing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from conftest import GitRepo
from pipelines.models import Event, Pipeline, PipelinePermission
from pipelines.services import create_pipeline, grant_permission, update_pipeline
from scm.base import ScmError, ScmTokenRejected
from scm.github import GitHubScm
from scm.models import ScmRole
from scm.rights import refresh_scm_role, save_scm_token
from scm.tests.github_fakes import fake_github

pytestmark = pytest.mark.django_db

API = "https://api.github.com"
REPO = "Codertocat/Hello-World"
ALL = {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True}
PUSH = {"admin": False, "maintain": False, "push": True, "triage": True, "pull": True}
PULL = {"admin": False, "maintain": False, "push": False, "triage": False, "pull": True}
LOCAL_CONFIG = "jobs:\n  main:\n    image: x\n    steps:\n      - a: echo\n"
# Each person's GitHub token and what GitHub says it may do on REPO (absent: a 404).
PERMISSIONS_BY_TOKEN: dict[str, dict[str, bool]] = {
    "tok-admin": ALL,
    "tok-push": PUSH,
    "tok-pull": PULL,
    "server-token": {},
}


@pytest.fixture
def github(settings: Any) -> Iterator[respx.Router]:
    settings.SD_GITHUB_API_URL = API
    settings.SD_GITHUB_TOKEN = "server-token"
    settings.SD_GITHUB_WEBHOOK_SECRET = ""
    settings.SD_SCM_RIGHTS_CACHE_SECONDS = 300
    with respx.mock(assert_all_called=False) as router:
        fake_github(router, (REPO,))
        router.get(f"{API}/repos/{REPO}", name="permissions").mock(side_effect=answer_permissions)
        yield router


def answer_permissions(request: httpx.Request) -> httpx.Response:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    permissions = PERMISSIONS_BY_TOKEN.get(token)
    if permissions is None:
        return httpx.Response(404, json={"message": "Not Found"})
    return httpx.Response(
        200, json={"full_name": REPO, "private": True, "permissions": permissions}
    )


def person(name: str, token: str | None = None) -> User:
    """A person who signed in with GitHub (and so has a stored token), or a local one."""
    user = User.objects.create_user(name)
    if token is not None:
        save_scm_token(user=user, provider="github", username=name, token=token)
    return user


@pytest.fixture
def pipeline(github: respx.Router) -> Pipeline:
    """A private GitHub pipeline whose only local right is its creator's (a GitHub admin)."""
    created = create_pipeline(
        checkout_url=f"https://github.com/{REPO}.git#master", user=person("creator", "tok-admin")
    )
    # The creator's own questions to GitHub are not what the tests count.
    ScmRole.objects.all().delete()
    github.reset()
    return created


def api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def start_event(user: User, pipeline: Pipeline) -> Any:
    return api(user).post("/v4/events", {"pipelineId": pipeline.pk}, format="json")


def permission_calls(router: respx.Router) -> int:
    return int(router.routes["permissions"].call_count)


# --- GitHubScm.user_role ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("permissions", "role"),
    [
        (ALL, "admin"),
        ({**PUSH, "maintain": True}, "push"),
        (PUSH, "push"),
        ({**PULL, "triage": True}, "pull"),
        (PULL, "pull"),
        # Older GitHub Enterprise versions know only admin, push and pull.
        ({"admin": False, "push": True, "pull": True}, "push"),
        ({"admin": False, "push": False, "pull": False}, None),
        ({}, None),
    ],
)
def test_githubs_permissions_map_onto_admin_push_and_pull(
    github: respx.Router, permissions: dict[str, bool], role: str | None
) -> None:
    github.get(f"{API}/repos/o/r").mock(
        return_value=httpx.Response(200, json={"private": True, "permissions": permissions})
    )
    scm = GitHubScm()

    assert scm.user_role(scm.parse_url("https://github.com/o/r.git#main"), "user-token") == role
    assert github.calls.last.request.headers["Authorization"] == "Bearer user-token"


@pytest.mark.parametrize(
    ("permissions", "role"),
    [(PULL, None), ({**PULL, "triage": True}, "pull"), (PUSH, "push"), (ALL, "admin")],
)
def test_on_a_public_repository_the_pull_github_gives_everyone_is_no_role(
    github: respx.Router, permissions: dict[str, bool], role: str | None
) -> None:
    github.get(f"{API}/repos/o/r").mock(
        return_value=httpx.Response(200, json={"private": False, "permissions": permissions})
    )
    scm = GitHubScm()

    assert scm.user_role(scm.parse_url("https://github.com/o/r.git#main"), "user-token") == role


def test_a_pipeline_made_private_by_its_admin_stays_hidden_from_githubs_public_readers(
    pipeline: Pipeline, github: respx.Router
) -> None:
    github.routes["permissions"].side_effect = None
    github.routes["permissions"].return_value = httpx.Response(
        200, json={"private": False, "permissions": PULL}
    )
    update_pipeline(pipeline=pipeline, settings={"public": False})
    reader = person("reader", "tok-pull")

    assert api(reader).get(f"/v4/pipelines/{pipeline.pk}").status_code == 403
    assert api(reader).get("/v4/pipelines").json() == []


def test_a_token_github_no_longer_accepts_is_an_error_of_its_own(github: respx.Router) -> None:
    github.get(f"{API}/repos/o/r").mock(return_value=httpx.Response(401))
    scm = GitHubScm()

    with pytest.raises(ScmTokenRejected, match="sign in again"):
        scm.user_role(scm.parse_url("https://github.com/o/r.git#main"), "t")


@pytest.mark.parametrize("status", [403, 404])
def test_a_repository_the_token_cannot_see_grants_nothing(
    github: respx.Router, status: int
) -> None:
    github.get(f"{API}/repos/o/r").mock(return_value=httpx.Response(status))
    scm = GitHubScm()

    assert scm.user_role(scm.parse_url("https://github.com/o/r.git#main"), "t") is None


def test_a_failing_github_is_an_error_not_a_verdict(github: respx.Router) -> None:
    github.get(f"{API}/repos/o/r").mock(return_value=httpx.Response(502))
    scm = GitHubScm()

    with pytest.raises(ScmError, match="retry later"):
        scm.user_role(scm.parse_url("https://github.com/o/r.git#main"), "t")


# --- rights through the API and the UI -------------------------------------------------------


def test_a_github_push_user_can_start_an_event_through_the_api(
    pipeline: Pipeline, github: respx.Router
) -> None:
    pusher = person("pusher", "tok-push")

    response = start_event(pusher, pipeline)

    assert response.status_code == 201, response.content
    assert Event.objects.filter(pipeline=pipeline, pk=response.json()["id"]).exists()
    assert ScmRole.objects.get(user=pusher, pipeline=pipeline).role == "push"
    assert not PipelinePermission.objects.filter(user=pusher).exists()


def test_a_github_pull_user_reads_but_cannot_start_an_event(pipeline: Pipeline) -> None:
    puller = person("puller", "tok-pull")

    started = start_event(puller, pipeline)

    assert started.status_code == 403
    assert "push rights" in started.json()["message"]
    assert api(puller).get(f"/v4/pipelines/{pipeline.pk}").status_code == 200
    assert [p["id"] for p in api(puller).get("/v4/pipelines").json()] == [pipeline.pk]


def test_an_outsider_sees_a_private_github_pipeline_as_404_and_never_in_lists(
    pipeline: Pipeline, client: Client
) -> None:
    outsider = person("outsider", "tok-unknown-to-the-repository")
    client.force_login(outsider)

    assert client.get(reverse("pipelines:detail", args=[pipeline.pk])).status_code == 404
    assert api(outsider).get(f"/v4/pipelines/{pipeline.pk}").status_code == 403
    assert api(outsider).get("/v4/pipelines").json() == []
    assert ScmRole.objects.get(user=outsider, pipeline=pipeline).role == ""


def test_the_ui_counts_the_scm_role_too(pipeline: Pipeline, client: Client) -> None:
    client.force_login(person("puller", "tok-pull"))

    assert client.get(reverse("pipelines:detail", args=[pipeline.pk])).status_code == 200
    assert client.get(reverse("pipelines:secrets", args=[pipeline.pk])).status_code == 403


def test_a_person_without_a_stored_token_gets_only_local_rights(
    pipeline: Pipeline, github: respx.Router
) -> None:
    local = person("local")

    assert start_event(local, pipeline).status_code == 403
    grant_permission(pipeline=pipeline, user=local, role="push", granted_by="creator")
    assert start_event(local, pipeline).status_code == 201
    assert permission_calls(github) == 0
    assert not ScmRole.objects.exists()


def test_the_effective_role_is_the_higher_of_the_local_and_the_scm_role(
    pipeline: Pipeline,
) -> None:
    admin_on_github = person("gh-admin", "tok-admin")
    grant_permission(pipeline=pipeline, user=admin_on_github, role="pull", granted_by="creator")
    pull_on_github = person("gh-pull", "tok-pull")
    grant_permission(pipeline=pipeline, user=pull_on_github, role="admin", granted_by="creator")

    for user in (admin_on_github, pull_on_github):
        refresh_scm_role(user=user, pipeline=pipeline)

    assert pipeline.role_of(admin_on_github) == "admin"
    assert pipeline.role_of(pull_on_github) == "admin"


def test_a_local_pipeline_never_asks_an_scm(
    github: respx.Router, make_repo: Callable[..., GitRepo]
) -> None:
    repo = make_repo({"screwdriver.yaml": LOCAL_CONFIG})
    local_pipeline = create_pipeline(checkout_url=repo.checkout_url, user=person("owner"))
    Pipeline.objects.filter(pk=local_pipeline.pk).update(scm_repo={"private": True})
    signed_in_with_github = person("pusher", "tok-push")

    response = api(signed_in_with_github).get(f"/v4/pipelines/{local_pipeline.pk}")

    assert response.status_code == 403
    assert permission_calls(github) == 0
    assert not ScmRole.objects.exists()


# --- the cache -------------------------------------------------------------------------------


def test_the_role_is_asked_once_within_the_cache_time_and_again_after_it(
    pipeline: Pipeline, github: respx.Router
) -> None:
    pusher = person("pusher", "tok-push")
    start = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    with time_machine.travel(start, tick=False) as clock:
        assert api(pusher).get(f"/v4/pipelines/{pipeline.pk}").status_code == 200
        assert permission_calls(github) == 1
        clock.shift(timedelta(seconds=299))
        assert api(pusher).get(f"/v4/pipelines/{pipeline.pk}/jobs").status_code == 200
        assert permission_calls(github) == 1
        clock.shift(timedelta(seconds=2))
        assert api(pusher).get(f"/v4/pipelines/{pipeline.pk}").status_code == 200
        assert permission_calls(github) == 2


def test_a_role_taken_away_on_github_is_taken_away_here_after_the_cache_time(
    pipeline: Pipeline, github: respx.Router
) -> None:
    pusher = person("pusher", "tok-push")
    start = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    with time_machine.travel(start, tick=False) as clock:
        refresh_scm_role(user=pusher, pipeline=pipeline)
        assert pipeline.has_right(pusher, "push")
        github.routes["permissions"].side_effect = None
        github.routes["permissions"].return_value = httpx.Response(
            200, json={"private": True, "permissions": PULL}
        )
        clock.shift(timedelta(seconds=299))
        refresh_scm_role(user=pusher, pipeline=pipeline)
        assert pipeline.role_of(pusher) == "push"
        clock.shift(timedelta(seconds=2))
        refresh_scm_role(user=pusher, pipeline=pipeline)
        assert pipeline.role_of(pusher) == "pull"


def test_an_unreachable_github_grants_nothing_once_the_answer_is_older_than_the_cache_time(
    pipeline: Pipeline, github: respx.Router
) -> None:
    pusher = person("pusher", "tok-push")
    start = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    with time_machine.travel(start, tick=False) as clock:
        refresh_scm_role(user=pusher, pipeline=pipeline)
        github.routes["permissions"].side_effect = httpx.ConnectError("down")
        clock.shift(timedelta(seconds=200))
        refresh_scm_role(user=pusher, pipeline=pipeline)
        assert pipeline.role_of(pusher) == "push"
        clock.shift(timedelta(seconds=400))
        refresh_scm_role(user=pusher, pipeline=pipeline)
        assert pipeline.role_of(pusher) is None
        assert start_event(pusher, pipeline).status_code == 403


def test_signing_in_again_forgets_the_recorded_roles(pipeline: Pipeline) -> None:
    pusher = person("pusher", "tok-push")
    refresh_scm_role(user=pusher, pipeline=pipeline)
    assert ScmRole.objects.filter(user=pusher).exists()

    save_scm_token(user=pusher, provider="github", username="pusher", token="tok-pull")

    assert not ScmRole.objects.filter(user=pusher).exists()
    refresh_scm_role(user=pusher, pipeline=pipeline)
    assert pipeline.role_of(pusher) == "pull"


# --- GitLab ----------------------------------------------------------------------------------


def test_a_gitlab_developer_gets_push_on_a_private_gitlab_pipeline(settings: Any) -> None:
    settings.SD_GITLAB_URL = "https://gitlab.example.com"
    gitlab_pipeline = Pipeline.objects.create(
        name="group/repo",
        scm_uri="gitlab:gitlab.example.com:group/repo:main",
        scm_context="gitlab:gitlab.example.com",
        checkout_url="https://gitlab.example.com/group/repo.git#main",
        scm_repo={"name": "group/repo", "branch": "main", "private": True},
    )
    developer = User.objects.create_user("developer")
    save_scm_token(
        user=developer, provider="gitlab", username="developer", token="glpat-developer-1"
    )
    outsider = User.objects.create_user("outsider")
    save_scm_token(user=outsider, provider="gitlab", username="outsider", token="glpat-other-1")

    with respx.mock(base_url="https://gitlab.example.com/api/v4") as gitlab:
        project = gitlab.get("/projects/group%2Frepo")
        project.side_effect = lambda request: (
            httpx.Response(200, json={"permissions": {"project_access": {"access_level": 30}}})
            if request.headers["Authorization"] == "Bearer glpat-developer-1"
            else httpx.Response(404)
        )
        assert api(developer).get(f"/v4/pipelines/{gitlab_pipeline.pk}").status_code == 200
        assert api(outsider).get(f"/v4/pipelines/{gitlab_pipeline.pk}").status_code == 403

    assert gitlab_pipeline.role_of(developer) == "push"
    assert gitlab_pipeline.role_of(outsider) is None
