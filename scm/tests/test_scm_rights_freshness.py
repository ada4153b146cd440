"""An SCM role counts only while recent, everywhere; a token the SCM refuses is forgotten.

Lists, permission checks and the live-log WebSocket all ignore an ScmRole older than
SD_SCM_RIGHTS_CACHE_SECONDS; the WebSocket asks the SCM again as the pages do. GitHub's and
GitLab's REST APIs are answered by respx; the database, the ASGI app and the pages are real.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from builds.consumers import CLOSE_FORBIDDEN
from builds.models import Build, BuildStatus, Event, Step
from pipelines.models import Job, Pipeline
from pipelines.services import grant_permission
from scm.models import ScmAccount, ScmRole
from scm.rights import refresh_scm_role, save_scm_token, scm_token_of
from screwdriver_site.asgi import application

API = "https://api.github.com"
REPO = "Codertocat/Hello-World"
GITLAB = "https://gitlab.example.com"


@pytest.fixture
def github(settings: Any) -> Iterator[respx.Router]:
    """A private repository on which tok-pull reads and every other token sees nothing."""
    settings.SD_GITHUB_API_URL = API
    settings.SD_SCM_RIGHTS_CACHE_SECONDS = 300
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{API}/repos/{REPO}", name="permissions").mock(
            side_effect=lambda request: (
                httpx.Response(200, json={"private": True, "permissions": {"pull": True}})
                if request.headers.get("Authorization") == "Bearer tok-pull"
                else httpx.Response(404)
            )
        )
        yield router


def private_github_pipeline() -> Pipeline:
    return Pipeline.objects.create(
        name=REPO,
        scm_uri=f"github:github.com:{REPO.lower()}:master",
        scm_context="github:github.com",
        checkout_url=f"https://github.com/{REPO}.git#master",
        scm_repo={"name": REPO, "branch": "master", "private": True},
    )


def person(name: str, token: str, provider: str = "github") -> User:
    user = User.objects.create_user(name, password="pw-123456")
    save_scm_token(user=user, provider=provider, username=name, token=token)
    return user


def record(user: User, pipeline: Pipeline, role: str, age: timedelta) -> None:
    ScmRole.objects.create(user=user, pipeline=pipeline, role=role, checked_at=timezone.now() - age)


def api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


# --- stale rows ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_role_recorded_longer_ago_than_the_cache_time_grants_nothing_in_lists_or_checks(
    settings: Any,
) -> None:
    settings.SD_SCM_RIGHTS_CACHE_SECONDS = 300
    pipeline = private_github_pipeline()
    old, recent = person("old", "tok-old"), person("recent", "tok-recent")
    record(old, pipeline, "admin", timedelta(days=365))
    record(recent, pipeline, "pull", timedelta(seconds=10))

    assert pipeline.role_of(old) is None
    assert not Pipeline.objects.readable_by(old).exists()
    assert api(old).get("/v4/pipelines").json() == []
    assert pipeline.role_of(recent) == "pull"
    assert list(Pipeline.objects.readable_by(recent)) == [pipeline]


# --- the live-log WebSocket ------------------------------------------------------------------


def build_of(pipeline: Pipeline) -> Build:
    job = Job.objects.create(pipeline=pipeline, name="main")
    event = Event.objects.create(pipeline=pipeline, sha="a" * 40, start_from="~commit")
    build = Build.objects.create(
        job=job, event=event, number=1, sha="a" * 40, status=BuildStatus.RUNNING
    )
    Step.objects.create(build=build, position=0, name="hello")
    return build


def session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def connect(build: Build, user: User) -> tuple[bool, int | None]:
    cookie = await sync_to_async(session_cookie)(user)
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    headers.append((b"cookie", cookie.encode()))
    communicator = WebsocketCommunicator(application, f"/ws/builds/{build.pk}/", headers=headers)
    connected, code = await communicator.connect()
    if connected:
        await communicator.disconnect()
    return connected, code


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_live_log_socket_asks_github_again_instead_of_trusting_an_old_role(
    github: respx.Router,
) -> None:
    pipeline = await sync_to_async(private_github_pipeline)()
    build = await sync_to_async(build_of)(pipeline)
    # Removed from the repository a year ago; the row from back then still says pull.
    removed = await sync_to_async(person)("removed", "tok-removed")
    await sync_to_async(record)(removed, pipeline, "pull", timedelta(days=365))
    # Given read access on GitHub since: nothing recorded yet.
    reader = await sync_to_async(person)("reader", "tok-pull")

    assert await connect(build, removed) == (False, CLOSE_FORBIDDEN)
    assert (await connect(build, reader))[0] is True
    role = await sync_to_async(ScmRole.objects.get)(user=reader, pipeline=pipeline)
    assert role.role == "pull"


# --- a token the SCM refuses -----------------------------------------------------------------


@pytest.fixture
def expired_gitlab(settings: Any) -> Iterator[respx.Router]:
    """A GitLab that answers 401 to every token, as it does once an OAuth token expired."""
    settings.SD_GITLAB_URL = GITLAB
    with respx.mock(assert_all_called=False) as router:
        router.get(url__regex=rf"{GITLAB}/api/v4/projects/.*").mock(
            return_value=httpx.Response(401, json={"message": "401 Unauthorized"})
        )
        yield router


def gitlab_pipeline(name: str = "group/repo") -> Pipeline:
    return Pipeline.objects.create(
        name=name,
        scm_uri=f"gitlab:gitlab.example.com:{name}:main",
        scm_context="gitlab:gitlab.example.com",
        checkout_url=f"{GITLAB}/{name}.git#main",
        scm_repo={"name": name, "branch": "main", "private": True},
    )


@pytest.mark.django_db
def test_an_expired_gitlab_token_is_forgotten_with_every_role_it_gave(
    expired_gitlab: respx.Router,
) -> None:
    pipeline, other = gitlab_pipeline(), gitlab_pipeline("group/other")
    developer = person("developer", "glpat-expired", "gitlab")
    record(developer, pipeline, "push", timedelta(days=1))
    record(developer, other, "push", timedelta(seconds=1))

    refresh_scm_role(user=developer, pipeline=pipeline)

    assert scm_token_of(developer, "gitlab:gitlab.example.com") is None
    assert not ScmRole.objects.filter(user=developer).exists()
    assert pipeline.role_of(developer) is None and other.role_of(developer) is None


@pytest.mark.django_db
def test_the_pipeline_page_says_the_gitlab_sign_in_expired_until_they_sign_in_again(
    expired_gitlab: respx.Router, client: Client
) -> None:
    pipeline = gitlab_pipeline()
    developer = person("developer", "glpat-expired", "gitlab")
    grant_permission(pipeline=pipeline, user=developer, role="pull", granted_by="admin")
    client.force_login(developer)

    page = client.get(reverse("pipelines:detail", args=[pipeline.pk]))

    assert page.status_code == 200
    assert "Your GitLab sign-in has expired: sign in again." in page.content.decode()
    save_scm_token(user=developer, provider="gitlab", username="developer", token="glpat-new")
    assert ScmAccount.objects.get(user=developer).encrypted_token
    expired_gitlab.routes.clear()
    expired_gitlab.get(url__regex=rf"{GITLAB}/api/v4/projects/.*").mock(
        return_value=httpx.Response(
            200, json={"permissions": {"project_access": {"access_level": 30}}}
        )
    )
    again = client.get(reverse("pipelines:detail", args=[pipeline.pk]))
    assert "sign-in has expired" not in again.content.decode()
    assert pipeline.role_of(developer) == "push"


@pytest.mark.django_db
def test_the_api_refusal_says_the_gitlab_sign_in_expired(expired_gitlab: respx.Router) -> None:
    pipeline = gitlab_pipeline()
    Pipeline.objects.filter(pk=pipeline.pk).update(scm_repo={"private": False})
    developer = person("developer", "glpat-expired", "gitlab")

    response = api(developer).post("/v4/events", {"pipelineId": pipeline.pk}, format="json")

    assert response.status_code == 403
    assert response.json()["message"] == "Your GitLab sign-in has expired: sign in again."
