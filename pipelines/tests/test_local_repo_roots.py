"""Local repositories are the operator's: only superusers, or paths under SD_LOCAL_REPO_ROOTS.

A person who may not use a path gets one answer whatever is there, so the API cannot be used
to learn which paths exist on the server's disk.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from conftest import GitRepo
from pipelines.models import Pipeline

pytestmark = pytest.mark.django_db

MakeRepo = Callable[..., GitRepo]
YAML = (
    "jobs:\n  main:\n    image: node:18\n    requires: [~commit]\n    steps:\n      - a: echo a\n"
)


@pytest.fixture(autouse=True)
def _no_hook_delivery(settings: Any) -> None:
    settings.SD_API_URL = "http://127.0.0.1:9"


@pytest.fixture
def allowed(settings: Any, tmp_path: Path) -> Path:
    """The one folder this test's operator allows."""
    root = tmp_path / "allowed"
    root.mkdir()
    settings.SD_LOCAL_REPO_ROOTS = [str(root)]
    return root


@pytest.fixture
def outside(make_repo: MakeRepo) -> GitRepo:
    """A real repository with a screwdriver.yaml, outside the allowed folder."""
    return make_repo({"screwdriver.yaml": YAML}, name="secret")


def as_user(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def create(user: User, checkout_url: str) -> tuple[int, Any]:
    response = as_user(user).post("/v4/pipelines", {"checkoutUrl": checkout_url}, format="json")
    return response.status_code, response.json()


def test_a_member_cannot_tell_an_existing_repository_outside_the_roots_from_a_missing_one(
    allowed: Path, outside: GitRepo, tmp_path: Path
) -> None:
    bob = User.objects.create_user(username="bob")
    not_a_repo = tmp_path / "plain"
    not_a_repo.mkdir()

    answers = [
        create(bob, outside.checkout_url),
        create(bob, f"file://{outside.bare}#main"),
        create(bob, f"{tmp_path}/no/such/repo.git#main"),
        create(bob, f"{allowed}/no-such.git#main"),
        create(bob, f"{not_a_repo}#main"),
        create(bob, "/etc/shadow#main"),
    ]

    assert answers[0][0] == 400
    assert answers[0][1]["message"].startswith("This local path is not one you may build from")
    assert all(answer == answers[0] for answer in answers), answers
    assert not Pipeline.objects.exists()


def test_the_web_form_gives_the_same_answer_for_an_existing_and_a_missing_path(
    allowed: Path, outside: GitRepo, tmp_path: Path
) -> None:
    bob = User.objects.create_user(username="bob")
    client = Client()
    client.force_login(bob)

    def page(url: str) -> str:
        response = client.post("/pipelines", {"checkoutUrl": url})
        assert response.status_code == 400
        text = response.content.decode().replace(url, "URL")
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", text)

    assert page(outside.checkout_url) == page(f"{tmp_path}/missing.git#main")
    assert "not one you may build from" in page(outside.checkout_url)
    assert not Pipeline.objects.exists()


def test_a_member_creates_a_pipeline_from_a_repository_under_an_allowed_root(
    allowed: Path, make_repo: MakeRepo
) -> None:
    repo = make_repo({"screwdriver.yaml": YAML}, name="app")
    inside = allowed / "app.git"
    repo.bare.rename(inside)

    status, body = create(User.objects.create_user(username="bob"), f"{inside}#main")

    assert status == 201, body
    assert Pipeline.objects.get().checkout_url == f"file://{inside}#main"


@pytest.mark.parametrize("escape", ["symlink", "dotdot"])
def test_a_path_that_escapes_the_root_is_refused(
    allowed: Path, outside: GitRepo, escape: str
) -> None:
    if escape == "symlink":
        link = allowed / "link.git"
        link.symlink_to(outside.bare)
        url = f"{link}#main"
    else:
        url = f"{allowed}/../git/{outside.bare.name}#main"
        assert Path(url.partition("#")[0]).resolve() == outside.bare.resolve()

    status, body = create(User.objects.create_user(username="bob"), url)

    assert status == 400
    assert body["message"].startswith("This local path is not one you may build from")
    assert not Pipeline.objects.exists()


def test_a_symlinked_root_still_admits_what_is_under_it(
    settings: Any, tmp_path: Path, make_repo: MakeRepo
) -> None:
    repo = make_repo({"screwdriver.yaml": YAML}, name="app")
    link = tmp_path / "repos-link"
    link.symlink_to(repo.bare.parent)
    settings.SD_LOCAL_REPO_ROOTS = [str(link)]

    status, body = create(User.objects.create_user(username="bob"), f"{link}/app.git#main")

    assert status == 201, body


def test_a_superuser_creates_from_any_path_and_is_told_what_is_wrong(
    allowed: Path, outside: GitRepo, tmp_path: Path
) -> None:
    root = User.objects.create_superuser(username="root")

    missing_status, missing = create(root, f"{tmp_path}/no/such.git#main")
    status, body = create(root, outside.checkout_url)

    assert missing_status == 400
    assert "does not exist" in missing["message"]
    assert status == 201, body


def test_an_admin_cannot_repoint_a_pipeline_outside_the_roots(
    allowed: Path, outside: GitRepo, make_repo: MakeRepo
) -> None:
    repo = make_repo({"screwdriver.yaml": YAML}, name="app")
    inside = allowed / "app.git"
    repo.bare.rename(inside)
    bob = User.objects.create_user(username="bob")
    status, created = create(bob, f"{inside}#main")
    assert status == 201, created

    response = as_user(bob).put(
        f"/v4/pipelines/{created['id']}", {"checkoutUrl": outside.checkout_url}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["message"].startswith("This local path is not one you may build")
    assert Pipeline.objects.get().checkout_url == f"file://{inside}#main"


def test_with_no_roots_only_superusers_use_local_paths(settings: Any, outside: GitRepo) -> None:
    settings.SD_LOCAL_REPO_ROOTS = []

    status, _ = create(User.objects.create_user(username="bob"), outside.checkout_url)

    assert status == 400
    assert not Pipeline.objects.exists()
