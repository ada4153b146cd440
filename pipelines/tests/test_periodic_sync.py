"""Syncing periodic schedules keeps exactly one per job, even after or during a race."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django_q.models import Schedule

from pipelines import periodic
from pipelines.models import Pipeline
from pipelines.services import create_pipeline

YAML = """
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - hi: echo hi
  nightly:
    image: alpine
    annotations:
      screwdriver.cd/buildPeriodically: H H * * *
    steps:
      - nightly: echo nightly
"""


@pytest.fixture
def pipeline(make_repo: Any, settings: Any) -> Pipeline:
    settings.SD_API_URL = "http://127.0.0.1:9"  # the push hook has nobody to tell
    user = User.objects.create_user(username="alice")
    return create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": YAML}).checkout_url, user=user
    )


def _schedules(pipeline: Pipeline) -> list[Schedule]:
    return list(
        Schedule.objects.filter(name__startswith=f"sd-periodic-{pipeline.pk}-").order_by("pk")
    )


@pytest.mark.django_db
def test_a_sync_collapses_duplicate_schedules_of_one_job_into_the_oldest(
    pipeline: Pipeline,
) -> None:
    [original] = _schedules(pipeline)
    for _ in range(2):
        Schedule.objects.create(
            name=original.name,
            func=original.func,
            args=original.args,
            schedule_type=Schedule.CRON,
            cron=original.cron,
            repeats=-1,
        )
    assert len(_schedules(pipeline)) == 3

    periodic.sync_schedules(pipeline=pipeline)

    assert [s.pk for s in _schedules(pipeline)] == [original.pk]


@pytest.mark.django_db(transaction=True)
def test_two_syncs_at_once_create_one_schedule(pipeline: Pipeline) -> None:
    Schedule.objects.filter(name__startswith=f"sd-periodic-{pipeline.pk}-").delete()
    barrier = threading.Barrier(2)

    def sync() -> None:
        try:
            barrier.wait(timeout=30)
            periodic.sync_schedules(pipeline=pipeline)
        finally:
            connection.close()

    workers = [threading.Thread(target=sync) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert len(_schedules(pipeline)) == 1
