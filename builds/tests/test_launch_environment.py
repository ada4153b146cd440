"""The Screwdriver variables a launch spec gives a build's steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from builds.launch import launch_spec
from builds.models import Build
from conftest import GitRepo
from pipelines.models import Pipeline
from pipelines.services import Creator, create_pipeline, start_event, sync_child_pipelines

pytestmark = pytest.mark.django_db

CONFIG = """
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - test: echo test
"""


@pytest.fixture(autouse=True)
def _urls(settings: Any) -> None:
    settings.SD_API_URL = "http://api.example:9"
    settings.SD_UI_URL = "http://ui.example:8"
    settings.SD_STEP_SHELL = "/bin/sh"


@pytest.fixture
def pipeline(make_repo: Callable[..., GitRepo]) -> Pipeline:
    return create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": CONFIG}).checkout_url,
        user=User.objects.create_user("alice"),
    )


def _env(build: Build) -> dict[str, str]:
    return dict(launch_spec(build)["environment"])


def test_a_build_is_told_its_ui_page_store_parent_event_and_privacy(pipeline: Pipeline) -> None:
    first = start_event(pipeline=pipeline, start_from="main", creator=Creator("A", "alice"))
    event = start_event(
        pipeline=pipeline, start_from="main", creator=Creator("A", "alice"), parent_event=first
    )
    build = Build.objects.get(event=event)

    env = _env(build)

    assert (
        env["SD_UI_BUILD_URL"] == f"http://ui.example:8/pipelines/{pipeline.pk}/builds/{build.pk}"
    )
    assert env["SD_STORE_URL"] == "http://api.example:9/v4/"
    assert env["SD_PARENT_EVENT_ID"] == str(first.pk)
    assert env["SD_SCHEDULED_BUILD"] == "false"
    assert env["SD_PRIVATE_PIPELINE"] == "false"
    assert env["USER_SHELL_BIN"] == "/bin/sh"
    assert "SD_CONFIG_DIR" not in env  # only a child pipeline of an external config has one


def test_a_first_event_has_no_parent_event_and_a_private_repository_says_so(
    pipeline: Pipeline,
) -> None:
    Pipeline.objects.filter(pk=pipeline.pk).update(scm_repo={"private": True})
    pipeline.refresh_from_db()
    event = start_event(pipeline=pipeline, start_from="main", creator=Creator("A", "alice"))

    env = _env(Build.objects.get(event=event))

    assert env["SD_PARENT_EVENT_ID"] == ""
    assert env["SD_PRIVATE_PIPELINE"] == "true"


def test_a_build_the_scheduler_started_is_a_scheduled_build(pipeline: Pipeline) -> None:
    scheduler = Creator("Screwdriver scheduler", "sd:scheduler")
    event = start_event(pipeline=pipeline, start_from="main", creator=scheduler)

    assert _env(Build.objects.get(event=event))["SD_SCHEDULED_BUILD"] == "true"


def test_a_job_that_names_a_user_shell_runs_its_steps_in_it(pipeline: Pipeline) -> None:
    event = start_event(pipeline=pipeline, start_from="main", creator=Creator("A", "alice"))
    build = Build.objects.get(event=event)
    job = event.job_configs["main"][0]
    configs = {"main": [{**job, "environment": {"USER_SHELL_BIN": "bash"}}]}
    type(event).objects.filter(pk=event.pk).update(job_configs=configs)
    build.refresh_from_db()
    build.event.refresh_from_db()

    spec = launch_spec(build)

    assert spec["shell"] == "bash"
    # The job's value comes after ours, so the steps see the shell they run in.
    assert [v for k, v in spec["environment"] if k == "USER_SHELL_BIN"][-1] == "bash"


def test_the_spec_gives_teardown_the_jobs_grace_bounded_by_the_operator(
    pipeline: Pipeline, settings: Any
) -> None:
    settings.SD_MAX_TERMINATION_GRACE_SECONDS = 100
    event = start_event(pipeline=pipeline, start_from="main", creator=Creator("A", "alice"))
    build = Build.objects.get(event=event)
    assert launch_spec(build)["teardownSeconds"] == 60

    job = event.job_configs["main"][0]
    for asked, given in ((30, 30), (500, 100)):
        annotations = {"screwdriver.cd/terminationGracePeriodSeconds": asked}
        configs = {"main": [{**job, "annotations": annotations}]}
        type(event).objects.filter(pk=event.pk).update(job_configs=configs)
        build.event.refresh_from_db()
        assert launch_spec(build)["teardownSeconds"] == given


@pytest.mark.parametrize("named", ["", "bash -x", "bash\nquit", "$(id)"])
def test_a_user_shell_that_is_not_one_program_name_leaves_ours(
    pipeline: Pipeline, named: str
) -> None:
    event = start_event(pipeline=pipeline, start_from="main", creator=Creator("A", "alice"))
    build = Build.objects.get(event=event)
    job = event.job_configs["main"][0]
    configs = {"main": [{**job, "environment": {"USER_SHELL_BIN": named}}]}
    type(event).objects.filter(pk=event.pk).update(job_configs=configs)
    build.event.refresh_from_db()

    assert launch_spec(build)["shell"] == "/bin/sh"


def test_a_childs_build_is_given_its_parents_repository_at_the_events_parent_sha(
    make_repo: Callable[..., GitRepo], settings: Any
) -> None:
    settings.SD_API_URL = "http://127.0.0.1:9"  # the parent's hook posts nowhere
    child_repo = make_repo({"README.md": "child"}, name="child")
    parent_file = f"childPipelines:\n  scmUrls:\n    - {child_repo.checkout_url}\n{CONFIG.lstrip()}"
    parent_repo = make_repo({"screwdriver.yaml": parent_file}, name="parent")
    parent = create_pipeline(
        checkout_url=parent_repo.checkout_url, user=User.objects.create_user("alice")
    )
    sync_child_pipelines(parent=parent)
    child = Pipeline.objects.get(config_pipeline=parent)
    event = start_event(pipeline=child, start_from="main", creator=Creator("A", "alice"))
    build = Build.objects.get(event=event)

    spec = launch_spec(build)

    ref = parent.repo_ref()
    assert spec["configCheckout"] == {
        "url": ref.repo_path,
        "branch": ref.branch,
        "sha": parent_repo.pushes[-1],
    }
    assert event.config_pipeline_sha == parent_repo.pushes[-1]
    # The parent's own builds have no parent to clone.
    own = start_event(pipeline=parent, start_from="main", creator=Creator("A", "alice"))
    assert "configCheckout" not in launch_spec(Build.objects.get(event=own))
