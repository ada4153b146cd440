"""`sourcePaths`: a pushed change runs only the first jobs it concerns; jobDisabledByDefault."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx
from django.contrib.auth.models import User
from django.test import Client

from conftest import GitRepo
from pipelines.models import Event, Job, Pipeline
from pipelines.services import Creator, create_pipeline, set_job_state, start_event, sync_pipeline
from pipelines.source_paths import matched_source, runs_for
from scm.local import LocalGitScm
from scm.models import WebhookDelivery
from scm.services import poll_all
from scm.tasks import process_delivery
from scm.tests.github_fakes import API, SECRET, deliver, fake_github
from scm.tests.scm_people import repository_admin

pytestmark = pytest.mark.django_db

MakeRepo = Callable[..., GitRepo]

CONFIG = """
shared:
  image: node:22
jobs:
  app:
    requires: [~commit]
    sourcePaths: ["src/app/", "screwdriver.yaml", "!src/app/package.json"]
    steps:
      - test: echo app
  docs:
    requires: [~commit]
    sourcePaths: docs/
    steps:
      - test: echo docs
  always:
    requires: [~commit]
    steps:
      - test: echo always
"""
ONLY_APP = """
shared:
  image: node:22
jobs:
  app:
    requires: [~commit]
    sourcePaths: ["src/app/"]
    steps:
      - test: echo app
"""


@pytest.fixture(autouse=True)
def _no_hook_delivery(settings: Any) -> None:
    # The installed hook posts to SD_API_URL on every push; a closed port makes it give up, so
    # the poller is what notices each push here.
    settings.SD_API_URL = "http://127.0.0.1:9"


def started(pipeline: Pipeline) -> list[list[str]]:
    return [
        sorted(e.builds.values_list("job__name", flat=True))
        for e in Event.objects.filter(pipeline=pipeline).order_by("pk")
    ]


# --- the rules ------------------------------------------------------------------------------


def test_a_directory_path_matches_files_under_it_and_a_file_path_only_that_file() -> None:
    paths = ["src/app/", "screwdriver.yaml"]
    assert matched_source(["src/app/main.js"], paths) == "src/app/"
    assert matched_source(["screwdriver.yaml"], paths) == "screwdriver.yaml"
    assert matched_source(["src/application.js", "screwdriver.yaml.bak"], paths) is None
    assert matched_source(["src/app"], paths) is None


def test_an_excluded_file_does_not_count_and_only_excludes_mean_everything_else() -> None:
    paths = ["src/app/", "!src/app/package.json"]
    assert not runs_for(["src/app/package.json"], paths)
    assert runs_for(["src/app/package.json", "src/app/main.js"], paths)
    assert runs_for(["README.md"], ["!docs/"])
    assert not runs_for(["docs/index.md"], ["!docs/"])


def test_a_job_without_source_paths_runs_for_any_change_or_none() -> None:
    assert runs_for([], [])
    assert runs_for(["anything"], [])
    assert not runs_for([], ["src/"])


# --- local pushes -----------------------------------------------------------------------------


def test_a_push_runs_only_the_first_jobs_whose_source_paths_it_touches(
    owner: User,
    make_repo: MakeRepo,
) -> None:
    repo = make_repo({"screwdriver.yaml": CONFIG})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=owner)

    repo.push({"src/app/main.js": "1"})
    poll_all()
    repo.push({"README.md": "2"})
    poll_all()
    repo.push({"src/app/package.json": "{}"})
    poll_all()
    repo.push({"docs/index.md": "3", "src/other/x.js": "4"})
    poll_all()

    assert started(pipeline) == [
        ["always", "app"],
        ["always"],
        ["always"],
        ["always", "docs"],
    ]


def test_the_changed_files_of_every_commit_since_the_last_seen_head_count_and_are_recorded(
    owner: User,
    make_repo: MakeRepo,
) -> None:
    repo = make_repo({"screwdriver.yaml": CONFIG})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=owner)
    repo.commit({"src/app/a.js": "1"}, "first")
    repo.push({"README.md": "2"}, "second")

    poll_all()

    event = Event.objects.get(pipeline=pipeline)
    assert sorted(event.builds.values_list("job__name", flat=True)) == ["always", "app"]
    assert event.meta["commit"]["changedFiles"] == "README.md,src/app/a.js"


def test_a_push_that_concerns_no_first_job_starts_no_event(
    owner: User, make_repo: MakeRepo
) -> None:
    repo = make_repo({"screwdriver.yaml": ONLY_APP})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=owner)

    repo.push({"README.md": "2"})
    poll_all()
    sha = repo.push({"src/app/main.js": "1"})
    poll_all()

    assert [(e.sha, started(pipeline)[0]) for e in Event.objects.filter(pipeline=pipeline)] == [
        (sha, ["app"])
    ]
    assert Pipeline.objects.get(pk=pipeline.pk).last_seen_sha == sha


def test_a_manual_start_ignores_source_paths_and_records_no_changed_files(
    owner: User,
    make_repo: MakeRepo,
) -> None:
    repo = make_repo({"screwdriver.yaml": ONLY_APP})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=owner)

    event = start_event(
        pipeline=pipeline, start_from="~commit", creator=Creator(name="Alice", username="alice")
    )

    assert list(event.builds.values_list("job__name", flat=True)) == ["app"]
    assert "commit" not in event.meta


# --- GitHub pushes ----------------------------------------------------------------------------

GITHUB_CONFIG = b"""
jobs:
  app:
    image: node:20
    requires: [~commit]
    sourcePaths: ["src/app/"]
    steps:
      - build: echo app
  site:
    image: node:20
    requires: [~commit]
    sourcePaths: ["site/"]
    steps:
      - build: echo site
"""


@pytest.fixture
def github(settings: Any) -> Iterator[respx.Router]:
    settings.SD_GITHUB_WEBHOOK_SECRET = SECRET
    settings.SD_GITHUB_TOKEN = "server-token"
    settings.SD_GITHUB_API_URL = "https://api.github.com"
    with respx.mock(assert_all_called=False) as router:
        fake_github(router, ("Codertocat/Hello-World",), GITHUB_CONFIG)
        yield router


def test_a_github_push_runs_the_jobs_its_commits_added_modified_or_removed_files_concern(
    client: Client, github: respx.Router
) -> None:
    pipeline = create_pipeline(
        checkout_url="https://github.com/Codertocat/Hello-World.git#master",
        user=repository_admin("octo"),
    )
    payload = {
        "ref": "refs/heads/master",
        "after": "c" * 40,
        "deleted": False,
        "head_commit": {"id": "c" * 40, "message": "change"},
        "commits": [
            {"added": ["README.md"], "modified": [], "removed": []},
            {"added": [], "modified": [], "removed": ["site/old.html"]},
        ],
        "repository": {"full_name": "Codertocat/Hello-World", "default_branch": "master"},
        "sender": {"login": "Codertocat"},
    }

    response = deliver(client, "push", payload, delivery="sp-1")
    assert response.status_code == 202, response.content
    process_delivery(WebhookDelivery.objects.get(delivery_id="sp-1").pk)

    event = Event.objects.get(pipeline=pipeline)
    assert list(event.builds.values_list("job__name", flat=True)) == ["site"]
    assert event.meta["commit"]["changedFiles"] == "README.md,site/old.html"


APP_CONFIG = b"""
jobs:
  main:
    image: node:20
    requires: [~commit]
    steps:
      - build: echo app
"""


def test_a_github_push_starts_a_folders_pipeline_only_when_it_changes_a_file_in_the_folder(
    client: Client, github: respx.Router
) -> None:
    github.get(f"{API}/repos/Codertocat/Hello-World/contents/app/screwdriver.yaml").mock(
        return_value=httpx.Response(200, content=APP_CONFIG)
    )
    pipeline = create_pipeline(
        checkout_url="https://github.com/Codertocat/Hello-World.git#master:app",
        user=repository_admin("octo"),
    )
    assert pipeline.root_dir == "app"

    def push(sha: str, files: list[str]) -> None:
        payload = {
            "ref": "refs/heads/master",
            "after": sha,
            "deleted": False,
            "head_commit": {"id": sha, "message": "change"},
            "commits": [{"added": files, "modified": [], "removed": []}],
            "repository": {"full_name": "Codertocat/Hello-World", "default_branch": "master"},
            "sender": {"login": "Codertocat"},
        }
        response = deliver(client, "push", payload, delivery=sha[:8])
        assert response.status_code == 202, response.content
        process_delivery(WebhookDelivery.objects.get(delivery_id=sha[:8]).pk)

    # "application.txt" starts with the folder's name but is not in it.
    push("c" * 40, ["other/notes.txt", "application.txt"])
    assert started(pipeline) == []
    push("d" * 40, ["other/notes.txt", "app/main.py"])
    assert started(pipeline) == [["main"]]
    assert Event.objects.get(pipeline=pipeline).sha == "d" * 40


# --- jobDisabledByDefault ---------------------------------------------------------------------

DISABLED_BY_DEFAULT = """
shared:
  image: node:22
jobs:
  main:
    requires: [~commit]
    steps:
      - test: echo main
  deploy:
    requires: [main]
    annotations:
      screwdriver.cd/jobDisabledByDefault: true
    steps:
      - deploy: echo deploy
"""


def test_a_job_disabled_by_default_is_created_disabled_and_stays_enabled_once_enabled(
    owner: User,
    make_repo: MakeRepo,
) -> None:
    repo = make_repo({"screwdriver.yaml": ONLY_APP})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=owner)
    repo.push({"screwdriver.yaml": DISABLED_BY_DEFAULT})
    sync_pipeline(pipeline=pipeline)

    states = dict(Job.objects.filter(pipeline=pipeline).values_list("name", "state"))
    assert (states["main"], states["deploy"]) == ("ENABLED", "DISABLED")

    set_job_state(
        job=Job.objects.get(pipeline=pipeline, name="deploy"),
        state="ENABLED",
        message="ready",
        changer="alice",
    )
    repo.push({"screwdriver.yaml": DISABLED_BY_DEFAULT + "\n# touched\n"})
    sync_pipeline(pipeline=pipeline)

    assert Job.objects.get(pipeline=pipeline, name="deploy").state == "ENABLED"


def test_a_job_disabled_by_default_in_the_first_file_is_disabled_at_pipeline_creation(
    owner: User,
    make_repo: MakeRepo,
) -> None:
    repo = make_repo({"screwdriver.yaml": DISABLED_BY_DEFAULT})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=owner)

    deploy = Job.objects.get(pipeline=pipeline, name="deploy")
    assert deploy.state == "DISABLED"
    assert "jobDisabledByDefault" in deploy.state_change_message


def test_without_a_known_previous_head_the_changed_files_are_the_commits_own(
    make_repo: MakeRepo,
) -> None:
    repo = make_repo({"screwdriver.yaml": ONLY_APP})
    first = repo.pushes[0]
    repo.commit({"src/app/a.js": "1"}, "one")
    sha = repo.push({"README.md": "2"}, "two")
    scm = LocalGitScm()
    ref = scm.parse_url(repo.checkout_url)

    assert scm.changed_files(ref, first, sha) == ["README.md", "src/app/a.js"]
    assert scm.changed_files(ref, "", sha) == ["README.md"]
    assert scm.changed_files(ref, "f" * 40, sha) == ["README.md"]
    assert scm.changed_files(ref, "", first) == ["screwdriver.yaml"]
