"""/v4/collections: a person's own named lists of the pipelines they can read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from conftest import GitRepo
from pipelines.models import Collection, Pipeline
from pipelines.services import create_pipeline, update_pipeline

pytestmark = pytest.mark.django_db

CONFIG = (
    "shared:\n  image: node:22\njobs:\n  main:\n    requires: [~commit]\n"
    "    steps:\n      - a: echo\n"
)


@pytest.fixture(autouse=True)
def _no_hook_delivery(settings: Any) -> None:
    settings.SD_API_URL = "http://127.0.0.1:9"


def _as(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def alice() -> User:
    return User.objects.create_user(username="alice")


@pytest.fixture
def bob() -> User:
    return User.objects.create_user(username="bob")


@pytest.fixture
def two(make_repo: Callable[..., GitRepo], alice: User) -> tuple[Pipeline, Pipeline]:
    first = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": CONFIG}, "one").checkout_url, user=alice
    )
    second = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": CONFIG}, "two").checkout_url, user=alice
    )
    return first, second


def test_a_person_creates_lists_updates_and_deletes_a_collection(
    alice: User, two: tuple[Pipeline, Pipeline]
) -> None:
    first, second = two
    created = _as(alice).post(
        "/v4/collections", {"name": "watching", "pipelineIds": [first.pk]}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (
        body["name"] == "watching"
        and body["pipelineIds"] == [first.pk]
        and body["type"] == "normal"
    )

    url = f"/v4/collections/{body['id']}"
    updated = _as(alice).put(url, {"pipelineIds": [first.pk, second.pk]}, format="json")
    assert updated.json()["pipelineIds"] == sorted([first.pk, second.pk])
    detail = _as(alice).get(url).json()
    assert [p["id"] for p in detail["pipelines"]] == sorted([first.pk, second.pk])
    assert [c["name"] for c in _as(alice).get("/v4/collections").json()] == ["watching"]

    assert _as(alice).delete(url).status_code == 204
    assert not Collection.objects.exists()
    assert Pipeline.objects.count() == 2  # deleting a collection deletes no pipeline


def test_someone_elses_collection_is_not_found_and_not_listed(
    alice: User, bob: User, two: tuple[Pipeline, Pipeline]
) -> None:
    mine = _as(alice).post("/v4/collections", {"name": "mine"}, format="json").json()
    assert _as(bob).get(f"/v4/collections/{mine['id']}").status_code == 404
    assert (
        _as(bob).put(f"/v4/collections/{mine['id']}", {"name": "stolen"}, format="json").status_code
        == 404
    )
    assert _as(bob).delete(f"/v4/collections/{mine['id']}").status_code == 404
    assert _as(bob).get("/v4/collections").json() == []
    assert Collection.objects.get().name == "mine"


def test_a_duplicate_name_or_an_unreadable_pipeline_is_refused_and_nothing_is_written(
    alice: User, bob: User, two: tuple[Pipeline, Pipeline]
) -> None:
    first, _ = two
    update_pipeline(pipeline=first, settings={"public": False})
    refused = _as(bob).post(
        "/v4/collections", {"name": "peek", "pipelineIds": [first.pk]}, format="json"
    )
    assert refused.status_code == 404
    assert "pipelineIds" in refused.json()["message"]
    assert not Collection.objects.exists()

    assert _as(alice).post("/v4/collections", {"name": "x"}, format="json").status_code == 201
    again = _as(alice).post("/v4/collections", {"name": "x"}, format="json")
    assert again.status_code == 409
    assert Collection.objects.count() == 1


def test_a_pipeline_made_private_later_drops_out_of_a_readers_collection_view(
    alice: User, bob: User, two: tuple[Pipeline, Pipeline]
) -> None:
    first, second = two
    created = _as(bob).post(
        "/v4/collections", {"name": "b", "pipelineIds": [first.pk, second.pk]}, format="json"
    )
    update_pipeline(pipeline=first, settings={"public": False})
    detail = _as(bob).get(f"/v4/collections/{created.json()['id']}").json()
    assert [p["id"] for p in detail["pipelines"]] == [second.pk]
