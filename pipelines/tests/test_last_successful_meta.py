"""GET /v4/pipelines/{id}/jobs/{name}/lastSuccessfulMeta tells outsiders nothing about job names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from conftest import GitRepo
from pipelines.models import Pipeline
from pipelines.services import create_pipeline
from pipelines.tests.api_fixtures import (
    CHAIN,
    World,
    main_build,
    make_world,
    new_event,
    with_bearer,
)
from screwdriver_site.api.tokens import issue_user_token
from screwdriver_site.tokens import issue_build_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def private(make_repo: Callable[..., GitRepo], settings: Any) -> World:
    settings.SD_API_URL = "http://127.0.0.1:9"  # the push hook has nobody to tell
    world = make_world(User.objects.create_user("ada"), make_repo({"screwdriver.yaml": CHAIN}))
    Pipeline.objects.filter(pk=world.pipeline.pk).update(settings={"public": False})
    return world


def _answer(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["message"]


def test_an_outsider_gets_the_same_answer_for_a_job_that_exists_and_one_that_does_not(
    private: World,
) -> None:
    User.objects.create_user("olive")
    client = with_bearer(issue_user_token(username="olive", is_admin=False))
    url = f"/v4/pipelines/{private.pipeline.pk}/jobs/{{}}/lastSuccessfulMeta"

    existing = _answer(client.get(url.format("main")))
    missing = _answer(client.get(url.format("no-such-job")))

    assert existing == missing
    assert existing[0] == 403
    assert "no-such-job" not in missing[1]


def test_another_pipelines_build_gets_the_same_answer_for_any_job_of_a_private_pipeline(
    private: World, make_repo: Callable[..., GitRepo]
) -> None:
    other = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": CHAIN}, "other").checkout_url,
        user=User.objects.create_user("olive"),
    )
    client = with_bearer(issue_build_token(main_build(new_event(other, "olive"))))
    url = f"/v4/pipelines/{private.pipeline.pk}/jobs/{{}}/lastSuccessfulMeta"

    assert _answer(client.get(url.format("main"))) == _answer(client.get(url.format("nope")))


def test_a_reader_learns_that_a_job_does_not_exist(private: World) -> None:
    client = with_bearer(issue_user_token(username="ada", is_admin=False))
    url = f"/v4/pipelines/{private.pipeline.pk}/jobs/nope/lastSuccessfulMeta"

    status, message = _answer(client.get(url))

    assert status == 404
    assert "has no job 'nope'" in message
    found = client.get(f"/v4/pipelines/{private.pipeline.pk}/jobs/main/lastSuccessfulMeta")
    assert found.status_code == 200
    assert found.json() == {"version": "1.0"}


def test_a_missing_pipeline_is_not_found(private: World) -> None:
    client = with_bearer(issue_user_token(username="ada", is_admin=False))

    assert client.get("/v4/pipelines/999999/jobs/main/lastSuccessfulMeta").status_code == 404
