"""Noticing pushes from several workers at once: every new head is built, each sha once."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction

from conftest import GitRepo
from pipelines.models import Event, Pipeline
from pipelines.services import create_pipeline, notice_push

pytestmark = pytest.mark.django_db(transaction=True)

YAML = """
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - hello: echo hi
"""


@pytest.fixture
def repo_and_pipeline(make_repo: Any, settings: Any) -> tuple[GitRepo, Pipeline]:
    settings.SD_API_URL = "http://127.0.0.1:9"  # the push hook has nobody to tell
    repo: GitRepo = make_repo({"screwdriver.yaml": YAML})
    user = User.objects.create_user(username="alice")
    return repo, create_pipeline(checkout_url=repo.checkout_url, user=user)


def test_a_notice_whose_previous_head_moved_under_it_still_builds_its_sha(
    repo_and_pipeline: tuple[GitRepo, Pipeline],
) -> None:
    repo, pipeline = repo_and_pipeline
    first = repo.push({"a.txt": "1"}, "first")
    second = repo.push({"b.txt": "2"}, "second")
    locked, release = threading.Event(), threading.Event()

    def other_noticer() -> None:
        # Another worker that noticed `first` and is moving the head at this very moment.
        try:
            with transaction.atomic():
                Pipeline.objects.select_for_update().filter(pk=pipeline.pk).update(
                    last_seen_sha=first
                )
                locked.set()
                release.wait(timeout=1.0)
        finally:
            connection.close()

    other = threading.Thread(target=other_noticer)
    other.start()
    assert locked.wait(timeout=30)
    # The other worker commits while this notice is under way (it waits up to a second).
    threading.Timer(0.3, release.set).start()

    event = notice_push(pipeline=pipeline, sha=second)
    other.join(timeout=30)

    assert event is not None
    assert event.sha == second
    pipeline.refresh_from_db()
    assert pipeline.last_seen_sha == second
    # What changed since the head this notice found, not since the one it first expected.
    assert event.meta["commit"]["changedFiles"] == "b.txt"


def test_two_workers_noticing_the_same_sha_at_once_start_one_event(
    repo_and_pipeline: tuple[GitRepo, Pipeline],
) -> None:
    repo, pipeline = repo_and_pipeline
    sha = repo.push({"a.txt": "1"}, "one push")
    barrier = threading.Barrier(2)
    results: list[Event | None] = []

    def notice() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(notice_push(pipeline=pipeline, sha=sha))
        finally:
            connection.close()

    workers = [threading.Thread(target=notice) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert sorted(e is None for e in results) == [False, True]
    assert Event.objects.filter(pipeline=pipeline, sha=sha).count() == 1


def test_a_notice_of_the_head_already_seen_starts_nothing(
    repo_and_pipeline: tuple[GitRepo, Pipeline],
) -> None:
    repo, pipeline = repo_and_pipeline
    sha = repo.push({"a.txt": "1"}, "one push")

    assert notice_push(pipeline=pipeline, sha=sha) is not None
    assert notice_push(pipeline=pipeline, sha=sha) is None
    assert Event.objects.filter(pipeline=pipeline, sha=sha).count() == 1
