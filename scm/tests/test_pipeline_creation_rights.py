"""Only a repository's admins create its GitHub or GitLab pipeline, which keeps its privacy.

`POST /v4/pipelines` asks the SCM, with the caller's own token, for their role on the
repository (superusers create with the server's token). GitHub's and GitLab's REST APIs are
answered at the HTTP boundary by respx; the database, the API and the rights are real.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from conftest import GitRepo
from pipelines.models import Pipeline
from scm.models import ScmAccount
from scm.rights import save_scm_token
from scm.tests.github_fakes import fake_github

pytestmark = pytest.mark.django_db

API = "https://api.github.com"
REPO = "Codertocat/Hello-World"
URL = f"https://github.com/{REPO}.git#master"
GITLAB = "https://gitlab.example.com"
PROJECT = "acme/platform/diaspora"
GITLAB_URL = f"{GITLAB}/{PROJECT}.git#master"
ADMIN = {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True}
PUSH = {"admin": False, "maintain": True, "push": True, "triage": True, "pull": True}
PERMISSIONS_BY_TOKEN: dict[str, dict[str, bool]] = {"tok-admin": ADMIN, "tok-push": PUSH}


@pytest.fixture
def github(settings: Any) -> Iterator[respx.Router]:
    """A private GitHub repository: what each token may do on it, and its contents."""
    settings.SD_GITHUB_API_URL = API
    settings.SD_GITHUB_TOKEN = "server-token"
    settings.SD_GITHUB_WEBHOOK_SECRET = ""
    with respx.mock(assert_all_called=False) as router:
        fake_github(router, (REPO,))
        router.get(f"{API}/repos/{REPO}", name="repository").mock(side_effect=answer_repository)
        yield router


def answer_repository(request: httpx.Request) -> httpx.Response:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if token == "tok-expired":
        return httpx.Response(401, json={"message": "Bad credentials"})
    if token == "server-token":
        return httpx.Response(200, json={"full_name": REPO, "private": True})
    permissions = PERMISSIONS_BY_TOKEN.get(token)
    if permissions is None:
        return httpx.Response(404, json={"message": "Not Found"})
    return httpx.Response(
        200, json={"full_name": REPO, "private": True, "permissions": permissions}
    )


def person(name: str, token: str | None = None, provider: str = "github") -> User:
    user = User.objects.create_user(name)
    if token is not None:
        save_scm_token(user=user, provider=provider, username=name, token=token)
    return user


def create(user: User, checkout_url: str = URL) -> Any:
    client = APIClient()
    client.force_authenticate(user)
    return client.post("/v4/pipelines", {"checkoutUrl": checkout_url}, format="json")


def test_a_github_repository_admin_creates_its_pipeline_which_keeps_the_repositorys_privacy(
    github: respx.Router,
) -> None:
    response = create(person("owner", "tok-admin"))

    assert response.status_code == 201, response.content
    pipeline = Pipeline.objects.get(pk=response.json()["id"])
    assert pipeline.scm_repo["private"] is True and not pipeline.is_public
    assert response.json()["scmRepo"]["private"] is True


def test_a_github_user_with_push_but_not_admin_is_refused_and_nothing_is_made(
    github: respx.Router,
) -> None:
    response = create(person("pusher", "tok-push"))

    assert response.status_code == 403
    assert "be an admin of Codertocat/Hello-World" in response.json()["message"]
    assert not Pipeline.objects.exists()


def test_a_person_who_never_signed_in_with_github_is_told_to_sign_in(
    github: respx.Router,
) -> None:
    response = create(person("local"))

    assert response.status_code == 403
    assert "sign in with GitHub" in response.json()["message"]
    assert not Pipeline.objects.exists()
    # The server's token was never used on the caller's behalf to read the repository.
    assert not any("contents" in str(call.request.url) for call in github.calls)


def test_a_person_github_cannot_see_the_repository_for_is_refused(github: respx.Router) -> None:
    response = create(person("stranger", "tok-of-someone-else"))

    assert response.status_code == 403
    assert not Pipeline.objects.exists()


def test_an_expired_sign_in_is_refused_with_sign_in_again_and_forgets_the_token(
    github: respx.Router,
) -> None:
    expired = person("expired", "tok-expired")

    response = create(expired)

    assert response.status_code == 403
    assert "sign-in has expired" in response.json()["message"]
    assert ScmAccount.objects.get(user=expired).encrypted_token == ""


def test_a_superuser_creates_with_the_server_token_and_the_repositorys_privacy(
    github: respx.Router,
) -> None:
    root = User.objects.create_superuser("root")

    response = create(root)

    assert response.status_code == 201, response.content
    assert Pipeline.objects.get().scm_repo["private"] is True


def test_a_public_github_repository_makes_a_public_pipeline(github: respx.Router) -> None:
    github.routes["repository"].side_effect = None
    github.routes["repository"].return_value = httpx.Response(
        200, json={"full_name": REPO, "private": False, "permissions": ADMIN}
    )

    response = create(person("owner", "tok-admin"))

    assert response.status_code == 201
    assert Pipeline.objects.get().is_public


@pytest.fixture
def gitlab(settings: Any) -> Iterator[respx.Router]:
    """A GitLab project of the given visibility where glpat-maintainer is a Maintainer."""
    settings.SD_GITLAB_URL = GITLAB
    settings.SD_GITLAB_TOKEN = "server-token"
    settings.SD_GITLAB_WEBHOOK_TOKEN = ""
    base = f"{GITLAB}/api/v4/projects/{PROJECT.replace('/', '%2F')}"
    with respx.mock(assert_all_called=False) as router:
        router.get(base, name="project").mock(
            side_effect=lambda request: httpx.Response(
                200,
                json={
                    "visibility": "internal",
                    "permissions": {
                        "project_access": {"access_level": 40}
                        if request.headers["Authorization"] == "Bearer glpat-maintainer"
                        else None,
                        "group_access": None,
                    },
                },
            )
        )
        router.get(f"{base}/repository/commits/master").mock(
            return_value=httpx.Response(200, json={"id": "a" * 40})
        )
        router.get(url__regex=r".*/repository/files/screwdriver\.yaml/raw.*").mock(
            return_value=httpx.Response(
                200, content=b"jobs:\n  main:\n    image: x\n    steps:\n      - a: echo\n"
            )
        )
        yield router


def test_a_gitlab_maintainer_creates_the_pipeline_of_an_internal_project_as_private(
    gitlab: respx.Router,
) -> None:
    response = create(person("jane", "glpat-maintainer", "gitlab"), GITLAB_URL)

    assert response.status_code == 201, response.content
    assert Pipeline.objects.get().scm_repo["private"] is True


def test_a_gitlab_user_without_access_to_the_project_is_refused(gitlab: respx.Router) -> None:
    response = create(person("john", "glpat-nobody", "gitlab"), GITLAB_URL)

    assert response.status_code == 403
    assert (
        "sign in with GitLab and be an admin of acme/platform/diaspora"
        in (response.json()["message"])
    )
    assert not Pipeline.objects.exists()


def test_a_local_pipeline_is_created_without_asking_any_scm(
    github: respx.Router, make_repo: Callable[..., GitRepo]
) -> None:
    repo = make_repo(
        {"screwdriver.yaml": "jobs:\n  main:\n    image: x\n    steps:\n      - a: b\n"}
    )

    response = create(person("alice"), repo.checkout_url)

    assert response.status_code == 201, response.content
    assert Pipeline.objects.get().scm_repo["private"] is False
    assert not github.calls


def test_a_local_pipelines_admin_cannot_repoint_it_at_a_github_repository_they_do_not_administer(
    github: respx.Router, make_repo: Callable[..., GitRepo]
) -> None:
    repo = make_repo(
        {"screwdriver.yaml": "jobs:\n  main:\n    image: x\n    steps:\n      - a: b\n"}
    )
    pusher = person("pusher", "tok-push")
    pipeline = Pipeline.objects.get(pk=create(pusher, repo.checkout_url).json()["id"])
    client = APIClient()
    client.force_authenticate(pusher)

    response = client.put(f"/v4/pipelines/{pipeline.pk}", {"checkoutUrl": URL}, format="json")

    assert response.status_code == 403
    pipeline.refresh_from_db()
    assert pipeline.scm_context == "local" and pipeline.checkout_url.endswith("/app.git#main")


def test_a_github_admin_repoints_a_pipeline_at_their_private_repository_as_private(
    github: respx.Router, make_repo: Callable[..., GitRepo]
) -> None:
    repo = make_repo(
        {"screwdriver.yaml": "jobs:\n  main:\n    image: x\n    steps:\n      - a: b\n"}
    )
    owner = person("owner", "tok-admin")
    pipeline = Pipeline.objects.get(pk=create(owner, repo.checkout_url).json()["id"])
    client = APIClient()
    client.force_authenticate(owner)

    response = client.put(f"/v4/pipelines/{pipeline.pk}", {"checkoutUrl": URL}, format="json")

    assert response.status_code == 200, response.content
    pipeline.refresh_from_db()
    assert pipeline.scm_context == "github:github.com" and pipeline.scm_repo["private"] is True
