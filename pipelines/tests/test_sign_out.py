"""Signing out and changing a password refuse the person's earlier JWTs, and only theirs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from conftest import GitRepo
from pipelines.tests.api_fixtures import CHAIN, make_world
from screwdriver_site.tokens import issue_build_token, issue_pipeline_token

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _no_hook_delivery(settings: Any) -> None:
    settings.SD_API_URL = "http://127.0.0.1:9"


@pytest.fixture
def alice() -> User:
    return User.objects.create_user(username="alice", password=PASSWORD)


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def login(username: str = "alice", password: str = PASSWORD) -> str:
    response = APIClient().post(
        "/v4/auth/login", {"username": username, "password": password}, format="json"
    )
    assert response.status_code == 200, response.content
    return str(response.json()["token"])


def works(token: str) -> bool:
    status = bearer(token).get("/v4/pipelines").status_code
    assert status in (200, 401), status
    return status == 200


def test_after_logout_the_earlier_jwt_is_refused(alice: User) -> None:
    token = login()
    assert works(token)

    assert bearer(token).post("/v4/auth/logout").status_code == 200

    response = bearer(token).get("/v4/pipelines")
    assert response.status_code == 401
    assert "revoked" in response.json()["message"]


def test_a_jwt_issued_in_the_same_second_after_logout_works(alice: User) -> None:
    before = login()
    bearer(before).post("/v4/auth/logout")

    after = login()

    assert not works(before)
    assert works(after)


def test_signing_out_of_the_web_ui_refuses_the_jwts_of_that_person_only(alice: User) -> None:
    User.objects.create_user(username="bob", password=PASSWORD)
    browser = Client()
    signed_in = browser.post("/login/", {"username": "alice", "password": PASSWORD})
    assert signed_in.status_code == 302, signed_in.content
    from_session = browser.get("/v4/auth/token").json()["token"]
    from_login = login()
    bobs = login("bob")

    assert browser.post("/logout/").status_code == 302

    assert not works(from_session)
    assert not works(from_login)
    assert works(bobs)


def test_a_password_change_refuses_the_earlier_jwts(alice: User) -> None:
    token = login()

    alice.set_password("a new and long passphrase")
    alice.save()

    assert not works(token)
    assert works(login(password="a new and long passphrase"))


def test_a_password_changed_in_the_admin_refuses_the_earlier_jwts(alice: User) -> None:
    token = login()
    admin = Client()
    admin.force_login(User.objects.create_superuser(username="root"))

    changed = admin.post(
        f"/admin/auth/user/{alice.pk}/password/",
        {"password1": "a new and long passphrase", "password2": "a new and long passphrase"},
    )

    assert changed.status_code == 302, changed.content
    assert not works(token)


def test_a_users_logout_leaves_build_and_pipeline_tokens_alone(
    make_repo: Callable[..., GitRepo], alice: User
) -> None:
    world = make_world(alice, make_repo({"screwdriver.yaml": CHAIN}))
    build_token = issue_build_token(world.build)
    pipeline_token = issue_pipeline_token(pipeline_id=world.pipeline.pk)
    user_token = login()

    bearer(user_token).post("/v4/auth/logout")

    assert not works(user_token)
    assert bearer(build_token).get(f"/v4/builds/{world.build.pk}").status_code == 200
    assert bearer(pipeline_token).get(f"/v4/pipelines/{world.pipeline.pk}").status_code == 200
