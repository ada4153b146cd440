"""Ids past what the database holds are the client's mistake: a 4xx, never a 500."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from screwdriver_site.api.tokens import issue_user_token
from screwdriver_site.ids import MAX_ID, parse_id

HUGE = 10**30

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> Client:
    User.objects.create_user(username="alice", password="pw-alice-123")
    token = issue_user_token(username="alice", is_admin=False)
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.mark.parametrize(
    "path",
    [
        f"/v4/builds/{HUGE}",
        f"/v4/builds/{MAX_ID + 1}/steps",
        f"/v4/pipelines/{HUGE}",
        f"/v4/jobs/{HUGE}",
        f"/v4/events/{HUGE}/builds",
        f"/v4/collections/{HUGE}",
    ],
)
def test_a_path_id_larger_than_any_row_is_a_404(api: Client, path: str) -> None:
    assert api.get(path).status_code == 404


def test_the_largest_id_is_still_looked_up_and_simply_not_found(api: Client) -> None:
    assert api.get(f"/v4/builds/{MAX_ID}").status_code == 404


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v4/collections", {"name": "mine", "pipelineIds": [HUGE]}),
        ("/v4/events", {"pipelineId": HUGE, "startFrom": "main"}),
        ("/v4/events", {"buildId": MAX_ID + 1}),
        ("/v4/secrets", {"pipelineId": HUGE, "name": "A", "value": "v"}),
    ],
)
def test_a_body_id_larger_than_any_row_is_a_400_naming_the_field(
    api: Client, path: str, body: dict[str, object]
) -> None:
    response = api.post(path, body, content_type="application/json")
    assert response.status_code == 400, response.content
    field = next(k for k, v in body.items() if isinstance(v, int | list))
    assert field in response.json()["message"]


def test_ui_pages_and_query_strings_with_huge_ids_are_404s_or_ignored() -> None:
    bob = User.objects.create_user(username="bob", password="pw-bob-12345")
    client = Client()
    client.force_login(bob)
    assert client.get(f"/pipelines/{HUGE}").status_code == 404
    assert client.get(f"/pipelines/{HUGE}/builds/1").status_code == 404


def test_parse_id_takes_only_what_a_row_id_can_be() -> None:
    assert parse_id("42") == 42
    assert parse_id(str(MAX_ID)) == MAX_ID
    for raw in (None, "", "0", "-1", "4.2", str(MAX_ID + 1), str(HUGE), "١٢"):
        assert parse_id(raw) is None
