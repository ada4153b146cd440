"""Events run the config of their own commit; jobs follow the file; a broken file fails visibly."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User

from builds.models import Build, Step
from conftest import GitRepo
from pipelines.models import Job
from pipelines.services import Creator, create_pipeline, start_event

pytestmark = pytest.mark.django_db

TWO_JOBS = """
shared:
  image: node:22
jobs:
  main:
    requires: [~commit]
    steps:
      - test: npm test
  lint:
    requires: [~commit]
    steps:
      - lint: npm run lint
"""
ONE_JOB = """
shared:
  image: node:22
jobs:
  main:
    requires: [~commit]
    steps:
      - test: npm run test:ci
"""
ALICE = Creator(name="Alice", username="alice")


@pytest.fixture(autouse=True)
def _no_hook_server(settings: object) -> None:
    # Pushes in these tests must not reach any server listening on the default port.
    settings.SD_API_URL = "http://127.0.0.1:9"  # type: ignore[attr-defined]


def _jobs(pipeline_id: int) -> dict[str, bool]:
    return dict(Job.objects.filter(pipeline_id=pipeline_id).values_list("name", "archived"))


def test_a_job_that_leaves_the_file_is_archived_and_restored_when_it_returns(
    make_repo: Callable[..., GitRepo],
) -> None:
    repo = make_repo({"screwdriver.yaml": TWO_JOBS})
    pipeline = create_pipeline(
        checkout_url=repo.checkout_url, user=User.objects.create(username="alice")
    )
    assert _jobs(pipeline.pk) == {"main": False, "lint": False}

    repo.push({"screwdriver.yaml": ONE_JOB}, "drop lint")
    start_event(pipeline=pipeline, start_from="~commit", creator=ALICE)
    assert _jobs(pipeline.pk) == {"main": False, "lint": True}

    repo.push({"screwdriver.yaml": TWO_JOBS}, "bring lint back")
    event = start_event(pipeline=pipeline, start_from="~commit", creator=ALICE)
    assert _jobs(pipeline.pk) == {"main": False, "lint": False}
    assert sorted(Build.objects.filter(event=event).values_list("job__name", flat=True)) == [
        "lint",
        "main",
    ]


def test_each_event_runs_the_config_of_its_own_commit(make_repo: Callable[..., GitRepo]) -> None:
    repo = make_repo({"screwdriver.yaml": TWO_JOBS})
    old_sha = repo.pushes[-1]
    pipeline = create_pipeline(
        checkout_url=repo.checkout_url, user=User.objects.create(username="alice")
    )
    repo.push({"screwdriver.yaml": ONE_JOB}, "new test command")

    old = start_event(pipeline=pipeline, start_from="~commit", creator=ALICE, sha=old_sha)
    new = start_event(pipeline=pipeline, start_from="~commit", creator=ALICE)

    def commands(event_id: int) -> list[str]:
        build = Build.objects.get(event_id=event_id, job__name="main")
        return [s.command for s in Step.objects.filter(build=build).order_by("position")]

    # sd-setup-scm and sd-teardown-artifacts are the launcher's own: no command.
    assert commands(old.pk) == ["", "npm test", ""]
    assert commands(new.pk) == ["", "npm run test:ci", ""]
    assert Build.objects.filter(event=old, job__name="lint").exists()
    assert not Build.objects.filter(event=new, job__name="lint").exists()


def test_a_broken_file_makes_an_event_whose_one_build_says_why_and_keeps_the_jobs(
    make_repo: Callable[..., GitRepo],
) -> None:
    repo = make_repo({"screwdriver.yaml": TWO_JOBS})
    pipeline = create_pipeline(
        checkout_url=repo.checkout_url, user=User.objects.create(username="alice")
    )
    repo.push({"screwdriver.yaml": "jobs:\n  main:\n    steps: [oops\n"}, "break it")

    event = start_event(pipeline=pipeline, start_from="~commit", creator=ALICE)

    assert event.config_errors and "YAMLException" in event.config_errors[0]
    build = Build.objects.get(event=event)
    assert build.job.name == "main"
    step_names = list(Step.objects.filter(build=build).values_list("name", flat=True))
    # No checkout for a file that cannot be read; its artifacts are published as any build's.
    assert step_names == ["config-parse-error", "sd-teardown-artifacts"]
    assert _jobs(pipeline.pk) == {"main": False, "lint": False}
