"""Collections on the home page: create one, add pipelines from their page, open its tab."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from conftest import GitRepo
from pipelines.models import Collection, Pipeline
from pipelines.services import create_collection, create_pipeline

pytestmark = pytest.mark.django_db

CONFIG = (
    "shared:\n  image: node:22\njobs:\n  main:\n    requires: [~commit]\n"
    "    steps:\n      - a: echo\n"
)


@pytest.fixture(autouse=True)
def _no_hook_delivery(settings: Any) -> None:
    settings.SD_API_URL = "http://127.0.0.1:9"


@pytest.fixture
def alice() -> User:
    return User.objects.create_user(username="alice")


@pytest.fixture
def browser(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def two(make_repo: Callable[..., GitRepo], alice: User) -> tuple[Pipeline, Pipeline]:
    make = lambda name: create_pipeline(  # noqa: E731
        checkout_url=make_repo({"screwdriver.yaml": CONFIG}, name).checkout_url, user=alice
    )
    return make("frontend"), make("backend")


def test_a_person_makes_a_collection_adds_a_pipeline_and_sees_only_it_in_the_tab(
    browser: Client, two: tuple[Pipeline, Pipeline]
) -> None:
    frontend, backend = two
    created = browser.post("/collections", {"name": "<b>Team</b>"})
    collection = Collection.objects.get()
    assert created.status_code == 302
    assert created["Location"] == f"/pipelines?collection={collection.pk}"

    page = browser.get(f"/pipelines/{frontend.pk}")
    assert b"Add to &lt;b&gt;Team&lt;/b&gt;" in page.content
    added = browser.post(
        f"/pipelines/{frontend.pk}/collections", {"collection": collection.pk, "action": "add"}
    )
    assert added.status_code == 302
    assert list(collection.pipelines.all()) == [frontend]

    tab = browser.get(f"/pipelines?collection={collection.pk}")
    assert frontend.name.encode() in tab.content
    assert backend.name.encode() not in tab.content
    assert b"<b>Team</b>" not in tab.content

    browser.post(
        f"/pipelines/{frontend.pk}/collections", {"collection": collection.pk, "action": "remove"}
    )
    assert not collection.pipelines.exists()
    browser.post(f"/collections/{collection.pk}/delete")
    assert not Collection.objects.exists()
    assert Pipeline.objects.count() == 2


def test_someone_elses_collection_can_be_neither_opened_nor_changed(
    browser: Client, two: tuple[Pipeline, Pipeline]
) -> None:
    frontend, backend = two
    bob = User.objects.create_user(username="bob")
    theirs = create_collection(user=bob, name="bobs", pipeline_ids=[backend.pk])

    page = browser.get(f"/pipelines?collection={theirs.pk}")
    assert page.status_code == 200
    assert frontend.name.encode() in page.content  # falls back to all pipelines
    assert b"bobs" not in page.content

    refused = browser.post(
        f"/pipelines/{frontend.pk}/collections", {"collection": theirs.pk, "action": "add"}
    )
    assert refused.status_code == 404
    assert browser.post(f"/collections/{theirs.pk}/delete").status_code == 404
    assert list(theirs.pipelines.all()) == [backend]
