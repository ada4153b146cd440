"""A pipeline's name: GitLab's full project path, GitHub's owner/repo, a local folder/repo."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx
from django.contrib.auth import get_user_model

from conftest import GitRepo
from pipelines.services import create_pipeline
from scm.tests.github_fakes import fake_github
from scm.tests.scm_people import repository_admin

pytestmark = pytest.mark.django_db

GITLAB = "https://gitlab.example.com"
CONFIG = (
    b"jobs:\n  main:\n    image: node:20\n    requires: [~commit]\n    steps:\n      - a: echo\n"
)


@pytest.fixture
def router(settings: Any) -> Iterator[respx.Router]:
    settings.SD_GITLAB_URL = GITLAB
    settings.SD_GITLAB_TOKEN = "server-token"
    settings.SD_GITLAB_WEBHOOK_TOKEN = ""
    settings.SD_GITHUB_API_URL = "https://api.github.com"
    settings.SD_GITHUB_TOKEN = "server-token"
    settings.SD_GITHUB_WEBHOOK_SECRET = ""
    with respx.mock(assert_all_called=False) as mock:
        api = re.escape(f"{GITLAB}/api/v4/projects/")
        # Whoever asks maintains every public project (scm_people.repository_admin).
        mock.get(url__regex=api + r"[^/]+$").mock(
            return_value=httpx.Response(
                200,
                json={
                    "visibility": "public",
                    "permissions": {"project_access": {"access_level": 40}},
                },
            )
        )
        mock.get(url__regex=api + r"[^/]+/repository/commits/[^/]+$").mock(
            return_value=httpx.Response(200, json={"id": "a" * 40})
        )
        mock.get(url__regex=api + r"[^/]+/repository/files/screwdriver\.yaml/raw").mock(
            return_value=httpx.Response(200, content=CONFIG)
        )
        yield mock


@pytest.mark.parametrize(
    "path", ["acme/platform/diaspora", "acme/platform/web/diaspora", "acme/diaspora"]
)
def test_a_gitlab_pipeline_is_named_by_its_projects_full_path(
    router: respx.Router, path: str
) -> None:
    user = repository_admin("jsmith", "gitlab")
    pipeline = create_pipeline(checkout_url=f"{GITLAB}/{path}.git#master", user=user)
    assert pipeline.name == path
    assert pipeline.scm_repo["name"] == path


def test_two_gitlab_projects_of_the_same_name_in_different_groups_get_different_names(
    router: respx.Router,
) -> None:
    user = repository_admin("jsmith", "gitlab")
    a = create_pipeline(checkout_url=f"{GITLAB}/acme/one/app.git#master", user=user)
    b = create_pipeline(checkout_url=f"{GITLAB}/other/one/app.git#master", user=user)
    assert (a.name, b.name) == ("acme/one/app", "other/one/app")


def test_a_github_pipeline_is_still_named_owner_slash_repo(router: respx.Router) -> None:
    fake_github(router, ("Codertocat/Hello-World",))
    user = repository_admin("octo")
    pipeline = create_pipeline(
        checkout_url="https://github.com/Codertocat/Hello-World.git#master", user=user
    )
    assert pipeline.name == "Codertocat/Hello-World"


def test_a_local_pipeline_is_still_named_by_its_folder_and_repository(
    make_repo: Callable[..., GitRepo],
) -> None:
    repo = make_repo({"screwdriver.yaml": CONFIG.decode()}, name="app")
    user = get_user_model().objects.create_user("alice")
    pipeline = create_pipeline(checkout_url=f"{repo.bare}#main", user=user)
    assert pipeline.name == f"{repo.bare.parent.name}/app"
