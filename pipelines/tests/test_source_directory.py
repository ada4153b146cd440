"""Screwdriver's sourceDirectory: a pipeline of one folder of a repository (`#branch:path`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from conftest import GitRepo
from pipelines.models import Event, Pipeline
from pipelines.services import PipelineError, create_pipeline, update_pipeline
from pipelines.source_paths import concerned_jobs, touches_root_dir
from scm.services import poll_all

pytestmark = pytest.mark.django_db

MakeRepo = Callable[..., GitRepo]


def job(name: str, *, source_paths: str = "") -> str:
    paths = f"    sourcePaths: {source_paths}\n" if source_paths else ""
    return (
        f"  {name}:\n    image: alpine\n    requires: [~commit, ~pr]\n{paths}"
        f"    steps:\n      - hi: echo {name}\n"
    )


# A monorepo: the top has its own pipeline file, app/ and web/ theirs.
MONOREPO = {
    "screwdriver.yaml": "jobs:\n" + job("top"),
    "app/screwdriver.yaml": "jobs:\n" + job("app-test") + job("app-lint"),
    "web/screwdriver.yaml": "jobs:\n" + job("web-test"),
    "other/README.md": "not a pipeline\n",
}


@pytest.fixture(autouse=True)
def _no_hook_delivery(settings: Any) -> None:
    # The hook posts to SD_API_URL on every push; a closed port makes it give up, so the
    # poller is what notices each push here.
    settings.SD_API_URL = "http://127.0.0.1:9"


@pytest.fixture
def mono(make_repo: MakeRepo) -> GitRepo:
    return make_repo(MONOREPO, "mono")


def as_user(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def started(pipeline: Pipeline) -> list[list[str]]:
    return [
        sorted(e.builds.values_list("job__name", flat=True))
        for e in Event.objects.filter(pipeline=pipeline).order_by("pk")
    ]


# --- creating ----------------------------------------------------------------------------------


def test_a_pipeline_of_a_folder_reads_that_folders_screwdriver_yaml(
    owner: User, mono: GitRepo
) -> None:
    pipeline = create_pipeline(checkout_url=f"{mono.bare}#main:app", user=owner)

    assert pipeline.root_dir == "app"
    assert pipeline.scm_repo["rootDir"] == "app"
    assert pipeline.checkout_url == f"file://{mono.bare}#main:app"
    assert pipeline.scm_uri == f"local:{mono.bare}:main:app"
    assert pipeline.repo_ref().root_dir == "app"
    assert sorted(pipeline.jobs.values_list("name", flat=True)) == ["app-lint", "app-test"]


def test_two_folders_of_one_branch_are_two_pipelines_and_one_folder_twice_is_a_conflict(
    owner: User, mono: GitRepo
) -> None:
    top = create_pipeline(checkout_url=mono.checkout_url, user=owner)
    app = create_pipeline(checkout_url=f"{mono.bare}#main:app", user=owner)
    web = create_pipeline(checkout_url=f"file://{mono.bare}#main:web/", user=owner)

    assert [p.root_dir for p in (top, app, web)] == ["", "app", "web"]
    assert sorted(web.jobs.values_list("name", flat=True)) == ["web-test"]
    with pytest.raises(PipelineError, match="already exists") as refused:
        create_pipeline(checkout_url=f"{mono.bare}#main:app/", user=owner)
    assert refused.value.status == 409
    assert Pipeline.objects.count() == 3


def test_a_folder_without_a_screwdriver_yaml_gets_the_failing_fallback_that_says_where(
    owner: User, mono: GitRepo
) -> None:
    pipeline = create_pipeline(checkout_url=f"{mono.bare}#main:other", user=owner)

    job = pipeline.jobs.get()
    assert "other/screwdriver.yaml was not found" in str(job.permutations)


def test_the_api_takes_the_folder_as_root_dir_or_in_the_url(owner: User, mono: GitRepo) -> None:
    api = as_user(owner)

    by_field = api.post(
        "/v4/pipelines", {"checkoutUrl": mono.checkout_url, "rootDir": "/app/"}, format="json"
    )
    in_url = api.post("/v4/pipelines", {"checkoutUrl": f"{mono.bare}#main:web"}, format="json")

    assert by_field.status_code == 201, by_field.content
    assert in_url.status_code == 201, in_url.content
    assert by_field.json()["scmRepo"]["rootDir"] == "app"
    assert by_field.json()["checkoutUrl"] == f"file://{mono.bare}#main:app"
    assert in_url.json()["scmRepo"]["rootDir"] == "web"
    assert in_url.json()["scmUri"] == f"local:{mono.bare}:main:web"


@pytest.mark.parametrize(
    "body",
    [
        {"rootDir": "../etc"},
        {"rootDir": "app//x"},
        {"rootDir": "app/\nx"},
        {"suffix": ":../etc"},
        {"suffix": ":/app"},
        {"suffix": ":"},
        {"suffix": ":app/./x"},
    ],
)
def test_a_folder_outside_the_repository_is_a_bad_request(
    owner: User, mono: GitRepo, body: dict[str, str]
) -> None:
    payload = {"checkoutUrl": mono.checkout_url + body.pop("suffix", ""), **body}

    response = as_user(owner).post("/v4/pipelines", payload, format="json")

    assert response.status_code == 400, response.content
    assert "source directory" in response.json()["message"]
    assert not Pipeline.objects.exists()


def test_a_folder_too_long_to_store_with_the_repository_is_a_bad_request(
    owner: User, mono: GitRepo
) -> None:
    folder = "/".join(["d" * 100] * 5)  # 504 characters: a valid folder on its own
    response = as_user(owner).post(
        "/v4/pipelines", {"checkoutUrl": f"{mono.bare}#main:{folder}"}, format="json"
    )

    assert response.status_code == 400, response.content
    assert "too long to store" in response.json()["message"]
    assert not Pipeline.objects.exists()


def test_an_update_moves_a_pipeline_to_another_folder(owner: User, mono: GitRepo) -> None:
    pipeline = create_pipeline(checkout_url=f"{mono.bare}#main:app", user=owner)

    update_pipeline(pipeline=pipeline, root_dir="web", user=owner)
    pipeline.refresh_from_db()
    assert (pipeline.root_dir, pipeline.scm_repo["rootDir"]) == ("web", "web")
    assert pipeline.checkout_url == f"file://{mono.bare}#main:web"
    active = pipeline.jobs.filter(archived=False).values_list("name", flat=True)
    assert list(active) == ["web-test"]

    response = as_user(owner).put(
        f"/v4/pipelines/{pipeline.pk}", {"checkoutUrl": mono.checkout_url}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["scmRepo"]["rootDir"] == ""
    assert Pipeline.objects.get(pk=pipeline.pk).root_dir == ""


# --- pushes ------------------------------------------------------------------------------------


def test_a_push_outside_the_folder_starts_nothing_and_one_inside_starts_its_jobs(
    owner: User, mono: GitRepo
) -> None:
    app = create_pipeline(checkout_url=f"{mono.bare}#main:app", user=owner)
    top = create_pipeline(checkout_url=mono.checkout_url, user=owner)

    outside = mono.push({"other/notes.txt": "1", "application.txt": "x"})
    poll_all()
    assert started(app) == []
    assert started(top) == [["top"]]

    inside = mono.push({"app/main.py": "print(1)\n"})
    poll_all()
    assert started(app) == [["app-lint", "app-test"]]
    assert Event.objects.get(pipeline=app).sha == inside
    assert Pipeline.objects.get(pk=app.pk).last_seen_sha == inside != outside


def test_a_jobs_source_paths_are_relative_to_the_repository_top_and_the_folder_must_change(
    owner: User, make_repo: MakeRepo
) -> None:
    # As Screwdriver's guide says: sourcePaths name paths from the repository's top, and a
    # change that leaves the pipeline's folder alone starts nothing, whatever they say.
    config = "jobs:\n" + job("api", source_paths='["app/api/", "shared/"]') + job("rest")
    repo = make_repo({"app/screwdriver.yaml": config}, "mono-paths")
    pipeline = create_pipeline(checkout_url=f"{repo.bare}#main:app", user=owner)

    repo.push({"shared/lib.py": "1"})  # outside app/: nothing
    poll_all()
    repo.push({"app/api/x.py": "1"})
    poll_all()
    repo.push({"app/README.md": "1", "shared/lib.py": "2"})
    poll_all()
    repo.push({"app/README.md": "2"})
    poll_all()

    assert started(pipeline) == [["api", "rest"], ["api", "rest"], ["rest"]]


def test_the_rules_of_a_folder_and_of_source_paths_together() -> None:
    jobs: dict[str, list[dict[str, Any]]] = {"a": [{"sourcePaths": ["lib/"]}], "b": [{}]}
    assert touches_root_dir(["x"], "")
    assert touches_root_dir(["app/x"], "app")
    assert not touches_root_dir(["app", "application/x", "lib/app/x"], "app")
    assert concerned_jobs(["a", "b"], jobs, "app", ["lib/x"]) == []
    assert concerned_jobs(["a", "b"], jobs, "app", ["lib/x", "app/y"]) == ["a", "b"]
    assert concerned_jobs(["a", "b"], jobs, "app", ["app/y"]) == ["b"]
    assert concerned_jobs(["a", "b"], jobs, "", ["lib/x"]) == ["a", "b"]


def test_the_create_form_takes_a_source_directory(admin_client: Client, mono: GitRepo) -> None:
    page = admin_client.get(reverse("pipelines:list")).content.decode()
    assert 'name="rootDir"' in page and "Source directory" in page

    refused = admin_client.post(
        reverse("pipelines:list"), {"checkoutUrl": f"{mono.bare}#main", "rootDir": "../etc"}
    )
    assert refused.status_code == 400
    assert 'class="error"' in refused.content.decode()
    assert not Pipeline.objects.exists()

    admin_client.post(
        reverse("pipelines:list"), {"checkoutUrl": f"{mono.bare}#main", "rootDir": "/app/"}
    )
    pipeline = Pipeline.objects.get()
    assert pipeline.root_dir == "app"
    assert sorted(pipeline.jobs.values_list("name", flat=True)) == ["app-lint", "app-test"]
