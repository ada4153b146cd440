"""Failed sign-ins are rate-limited: five wrong passwords lock that username at that address."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db

PASSWORD = "the right password 123"
WAIT = "wait 15 minutes, then try again"


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password=PASSWORD, is_staff=True, is_superuser=True)


def _form(client: Client, path: str, password: str, username: str = "alice") -> int:
    return client.post(path, {"username": username, "password": password}).status_code


def _api(client: Client, password: str, username: str = "alice") -> tuple[int, dict[str, object]]:
    response = client.post(
        "/v4/auth/login",
        json.dumps({"username": username, "password": password}),
        content_type="application/json",
    )
    return response.status_code, response.json()


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_five_wrong_passwords_lock_the_form_until_the_cool_off_ends(alice: User, path: str) -> None:
    client = Client()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        assert [_form(client, path, "wrong") for _ in range(4)] == [200] * 4
        assert _form(client, path, "wrong") == 429

        refused = client.post(path, {"username": "alice", "password": PASSWORD})
        assert refused.status_code == 429
        assert refused["Retry-After"] == "900"
        page = refused.content.decode()
        assert "Too many failed sign-ins for this account from your address" in page
        assert WAIT in page
        assert "<!doctype html>" in page and "Back to the sign-in page" in page  # our page

        clock.shift(timedelta(minutes=14))
        assert _form(client, path, PASSWORD) == 429
        clock.shift(timedelta(minutes=1, seconds=1))
        assert _form(client, path, PASSWORD) == 302


def test_the_api_login_answers_a_json_429_in_screwdrivers_shape(alice: User) -> None:
    client = Client()
    for _ in range(4):
        assert _api(client, "wrong")[0] == 401
    assert _api(client, "wrong")[0] == 429
    status, body = _api(client, PASSWORD)
    assert status == 429
    assert body == {
        "statusCode": 429,
        "error": "Too Many Requests",
        "message": f"Too many failed sign-ins for this account from your address: {WAIT}.",
    }


def test_a_lockout_is_shared_by_the_form_the_admin_and_the_api(alice: User) -> None:
    client = Client()
    for path in ("/login/", "/admin/login/", "/login/", "/admin/login/"):
        _form(client, path, "wrong")
    assert _api(client, "wrong")[0] == 429
    assert _api(client, PASSWORD)[0] == 429
    assert _form(client, "/login/", PASSWORD) == 429


def test_another_person_at_the_same_address_is_not_locked_out(alice: User) -> None:
    User.objects.create_user("bob", password=PASSWORD)
    client = Client()
    for _ in range(5):
        _form(client, "/login/", "wrong")
    assert _form(client, "/login/", PASSWORD) == 429
    assert _form(Client(), "/login/", PASSWORD, username="bob") == 302
    assert _api(Client(), PASSWORD, username="bob")[0] == 200


def test_the_same_person_from_another_address_is_not_locked_out(alice: User) -> None:
    for _ in range(5):
        _form(Client(REMOTE_ADDR="203.0.113.9"), "/login/", "wrong")
    assert _form(Client(REMOTE_ADDR="203.0.113.9"), "/login/", PASSWORD) == 429
    assert _form(Client(), "/login/", PASSWORD) == 302


def test_a_good_sign_in_forgets_the_earlier_failures(alice: User) -> None:
    client = Client()
    for _ in range(4):
        _form(client, "/login/", "wrong")
    assert _form(client, "/login/", PASSWORD) == 302
    client = Client()
    assert [_form(client, "/login/", "wrong") for _ in range(4)] == [200] * 4
    assert _form(client, "/login/", PASSWORD) == 302
