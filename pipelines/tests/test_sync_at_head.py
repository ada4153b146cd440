"""Only the screwdriver.yaml at the branch head speaks for the pipeline; older files add jobs."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django_q.models import Schedule

from builds.models import Build
from conftest import GitRepo
from pipelines.models import Job, Pipeline, Stage
from pipelines.services import Creator, PipelineError, create_pipeline, notice_push, start_event

pytestmark = pytest.mark.django_db

OLD = """
annotations:
  screwdriver.cd/restrictPR: none
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - hello: echo old
  legacy:
    image: alpine
    requires: [~tag]
    steps:
      - hello: echo legacy
  release:
    image: alpine
    requires: [~tag]
    steps:
      - hello: echo release
"""

HEAD = """
annotations:
  screwdriver.cd/restrictPR: fork
stages:
  ship:
    requires: [main]
    jobs: [deploy]
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - hello: echo new
  deploy:
    image: alpine
    annotations:
      screwdriver.cd/buildPeriodically: H H * * *
    steps:
      - hello: echo deploy
  release:
    image: alpine
    requires: [~tag]
    steps:
      - hello: echo release at head
"""

TAGGER = Creator(name="tagger", username="tagger")


@pytest.fixture
def old_and_head(make_repo: Any, settings: Any) -> tuple[GitRepo, Pipeline, str]:
    """A pipeline whose head says restrictPR: fork, and the older commit that said none."""
    settings.SD_API_URL = "http://127.0.0.1:9"  # the push hook has nobody to tell
    repo: GitRepo = make_repo({"screwdriver.yaml": OLD})
    old = repo.pushes[0]
    head = repo.push({"screwdriver.yaml": HEAD}, "restrict pull requests to forks")
    user = User.objects.create_user(username="alice")
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=user)
    assert pipeline.last_seen_sha == head
    return repo, pipeline, old


def test_a_tag_event_at_an_old_commit_leaves_the_heads_restrict_pr_in_place(
    old_and_head: tuple[GitRepo, Pipeline, str],
) -> None:
    _, pipeline, old = old_and_head
    assert pipeline.annotations == {"screwdriver.cd/restrictPR": "fork"}
    graph = pipeline.workflow_graph

    event = start_event(pipeline=pipeline, start_from="~tag", creator=TAGGER, sha=old)

    pipeline.refresh_from_db()
    assert pipeline.annotations == {"screwdriver.cd/restrictPR": "fork"}
    assert pipeline.workflow_graph == graph
    # The event itself runs what its own commit says.
    assert sorted(Build.objects.filter(event=event).values_list("job__name", flat=True)) == [
        "legacy",
        "release",
    ]
    assert event.workflow_graph != graph


def test_an_event_at_an_old_commit_adds_the_jobs_it_needs_and_changes_no_other(
    old_and_head: tuple[GitRepo, Pipeline, str],
) -> None:
    _, pipeline, old = old_and_head
    release_before = Job.objects.get(pipeline=pipeline, name="release").permutations

    start_event(pipeline=pipeline, start_from="~tag", creator=TAGGER, sha=old)

    jobs = {j.name: j for j in Job.objects.filter(pipeline=pipeline)}
    assert sorted(jobs) == [
        "deploy",
        "legacy",
        "main",
        "release",
        "stage@ship:setup",
        "stage@ship:teardown",
    ]
    assert [n for n, j in jobs.items() if j.archived] == []
    assert jobs["release"].permutations == release_before
    stages = Stage.objects.filter(pipeline=pipeline, archived=False)
    assert list(stages.values_list("name", flat=True)) == ["ship"]
    assert Schedule.objects.filter(name__startswith=f"sd-periodic-{pipeline.pk}-").count() == 1


def test_a_push_to_the_branch_head_still_updates_the_pipeline(
    old_and_head: tuple[GitRepo, Pipeline, str],
) -> None:
    repo, pipeline, _ = old_and_head
    sha = repo.push({"screwdriver.yaml": HEAD.replace("restrictPR: fork", "restrictPR: all")})

    assert notice_push(pipeline=pipeline, sha=sha) is not None

    pipeline.refresh_from_db()
    assert pipeline.annotations == {"screwdriver.cd/restrictPR": "all"}


def test_a_job_the_head_dropped_stays_archived_and_an_old_start_of_it_says_why(
    make_repo: Any, settings: Any
) -> None:
    settings.SD_API_URL = "http://127.0.0.1:9"  # the push hook has nobody to tell
    repo: GitRepo = make_repo({"screwdriver.yaml": OLD})
    old = repo.pushes[0]
    pipeline = create_pipeline(
        checkout_url=repo.checkout_url, user=User.objects.create_user(username="alice")
    )
    head = repo.push({"screwdriver.yaml": HEAD}, "drop legacy")
    assert notice_push(pipeline=pipeline, sha=head) is not None
    assert Job.objects.get(pipeline=pipeline, name="legacy").archived

    tag = start_event(pipeline=pipeline, start_from="~tag", creator=TAGGER, sha=old)
    with pytest.raises(PipelineError) as refused:
        start_event(pipeline=pipeline, start_from="legacy", creator=TAGGER, sha=old)

    assert list(Build.objects.filter(event=tag).values_list("job__name", flat=True)) == ["release"]
    assert Job.objects.get(pipeline=pipeline, name="legacy").archived
    assert refused.value.status == 422
    assert "gone from the branch head's screwdriver.yaml" in refused.value.message
