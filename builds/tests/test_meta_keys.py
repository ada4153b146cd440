"""What a real build reads with `meta get`: Screwdriver's default keys, and another job's meta."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from builds.models import Build, BuildStatus
from builds.tests.step_logs import step_log
from conftest import GitRepo, wait_until
from executors.launcher import meta
from pipelines.models import Event, Pipeline
from pipelines.services import Creator, create_pipeline, start_event
from scm.services import poll_all

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _owner() -> User:
    return User.objects.get_or_create(username="alice")[0]


def _finished(event: Event, job: str) -> Build | None:
    build = Build.objects.filter(event=event, job__name=job).first()
    if build is None or build.status in {BuildStatus.QUEUED, BuildStatus.RUNNING}:
        return None
    return build


def _run(pipeline: Pipeline, job: str, start_from: str = "~commit") -> Build:
    event = start_event(
        pipeline=pipeline, start_from=start_from, creator=Creator("Alice Smith", "alice")
    )
    return wait_until(lambda: _finished(event, job), timeout=90, what=f"{job} to finish")


KEYS = """
jobs:
  main:
    image: alpine
    requires: [~commit]
    sourcePaths: ["src/"]
    steps:
      - keys: |
          for key in build.buildId build.jobId build.jobName build.eventId build.pipelineId \\
              build.sha event.creator.username commit.message commit.author.name \\
              commit.changedFiles; do
            echo "$key=$(meta get $key)"
          done
          echo "SD_SOURCE_PATH=${SD_SOURCE_PATH:-}"
"""


def test_a_build_reads_screwdriver_default_meta_keys_with_meta_get(
    stack: Any, make_repo: Any
) -> None:
    repo: GitRepo = make_repo({"screwdriver.yaml": KEYS})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=_owner())
    sha = repo.push({"src/app.js": "1", "README.md": "x"}, "Add the app")
    # The installed hook tells the live server; polling as well changes nothing (one event).
    event = wait_until(
        lambda: poll_all() * 0 or Event.objects.filter(pipeline=pipeline, sha=sha).first(),
        timeout=30,
        what="the push's event",
    )

    build = wait_until(lambda: _finished(event, "main"), timeout=90, what="main to finish")

    assert build.status == BuildStatus.SUCCESS, build.status_message
    assert step_log(build, "keys") == [
        f"build.buildId={build.pk}",
        f"build.jobId={build.job_id}",
        "build.jobName=main",
        f"build.eventId={event.pk}",
        f"build.pipelineId={pipeline.pk}",
        f"build.sha={sha}",
        "event.creator.username=sd:scm",
        "commit.message=Add the app",
        "commit.author.name=Test User",
        "commit.changedFiles=README.md,src/app.js",
        "SD_SOURCE_PATH=src/",
    ]


def test_a_build_started_by_hand_sees_the_starter_and_no_changed_files(
    stack: Any, make_repo: Any
) -> None:
    repo: GitRepo = make_repo({"screwdriver.yaml": KEYS})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=_owner())

    build = _run(pipeline, "main")

    assert build.status == BuildStatus.SUCCESS, build.status_message
    log = step_log(build, "keys")
    assert "event.creator.username=alice" in log
    assert "commit.changedFiles=" in log
    assert log[-1] == "SD_SOURCE_PATH="


PUBLISH = """
jobs:
  publish:
    image: alpine
    requires: [~commit]
    steps:
      - publish: meta set example.coverage 99.95 && meta set example.name "{name}"
"""
READER = """
jobs:
  read:
    image: alpine
    requires: [~commit]
    steps:
      - external: |
          echo "coverage=$(meta get example.coverage --external sd@{public}:publish)"
          echo "example=$(meta get --external=sd@{public}:publish example)"
          echo "kept=$(meta get sd.{public}.publish.example.name)"
      - refused-set: |
          meta set example.x 1 --external sd@{public}:publish 2>&1 || echo "set exit $?"
      - private: |
          meta get example --external sd@{private}:publish 2>&1 || echo "private exit $?"
"""


def test_meta_get_external_reads_a_public_pipelines_last_success_and_refuses_a_private_one(
    stack: Any, make_repo: Any
) -> None:
    public = create_pipeline(
        checkout_url=make_repo(
            {"screwdriver.yaml": PUBLISH.format(name="pub")}, "pub"
        ).checkout_url,
        user=_owner(),
    )
    private = create_pipeline(
        checkout_url=make_repo(
            {"screwdriver.yaml": PUBLISH.format(name="hidden-42")}, "priv"
        ).checkout_url,
        user=_owner(),
    )
    Pipeline.objects.filter(pk=private.pk).update(settings={"public": False})
    for pipeline in (public, private):
        assert _run(pipeline, "publish").status == BuildStatus.SUCCESS
    reader = create_pipeline(
        checkout_url=make_repo(
            {"screwdriver.yaml": READER.format(public=public.pk, private=private.pk)}, "reader"
        ).checkout_url,
        user=_owner(),
    )

    build = _run(reader, "read")

    assert build.status == BuildStatus.SUCCESS, build.status_message
    coverage, example, kept = step_log(build, "external")
    assert (coverage, kept) == ("coverage=99.95", "kept=pub")
    # PostgreSQL's jsonb keeps keys in its own order: compare the object, not its text.
    assert example.startswith("example=")
    assert json.loads(example.removeprefix("example=")) == {"coverage": "99.95", "name": "pub"}
    assert step_log(build, "refused-set") == [
        "meta: meta set works on this build's meta only: drop --external.",
        "set exit 1",
    ]
    private_log = step_log(build, "private")
    assert private_log[-1] == "private exit 1"
    assert f"You need pull rights on pipeline {private.pk}" in private_log[0]
    assert "hidden-42" not in "\n".join(private_log)


# --- the meta command itself, without a server -------------------------------------------------


def test_external_meta_left_by_a_triggering_build_is_read_without_asking_the_api(
    tmp_path: Path,
) -> None:
    path = tmp_path / "meta.json"
    path.write_text(json.dumps({"sd": {"12": {"publish": {"version": "1.2.3"}}}}))

    # No SD_API_URL or token: a request would fail, so the answer comes from the meta file.
    assert meta.run(["get", "version", "--external", "sd@12:publish"], path, {}) == (
        0,
        "1.2.3\n",
        "",
    )


def test_external_meta_with_skip_fetch_and_nothing_kept_is_null(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_text("{}")

    assert meta.run(["get", "version", "-e", "sd@12:publish", "-F"], path, {}) == (
        0,
        "null\n",
        "",
    )


def test_external_meta_of_a_bare_job_name_is_of_this_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_text(json.dumps({"sd": {"7": {"publish": {"v": 1}}}}))

    assert meta.run(["get", "v", "--external", "publish"], path, {"SD_PIPELINE_ID": "7"})[:2] == (
        0,
        "1\n",
    )
