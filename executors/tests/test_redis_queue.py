"""SD_REDIS_URL moves django-q2's queue onto Redis; the database stays the embedded default.

Against the real Redis on 127.0.0.1:6379 (skipped with a reason when none answers): each test
has a queue name of its own, so parallel runs never read each other's tasks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import OrmQ
from django_q.signing import SignedPackage
from django_q.tasks import async_task
from prometheus_client.parser import text_string_to_metric_families

from builds.dispatch import REQUEUE_AFTER, reap
from builds.models import Build, BuildStatus
from builds.services import START_TASK
from conftest import BASE_DIR, wait_until
from pipelines.models import Event, Pipeline
from pipelines.services import create_pipeline
from pipelines.tests.factories import make_pipeline

TWO_JOBS = """
shared:
  image: buildpack-deps
jobs:
  main:
    requires: [~commit]
    steps:
      - hello: echo "through the Redis queue"
  deploy:
    requires: [main]
    steps:
      - deploy: echo deployed
"""


def _settings_of(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The queue and channel settings a process started with `env` reads."""
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        "print(json.dumps({'q': settings.Q_CLUSTER, 'layers': settings.CHANNEL_LAYERS}))"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SD_REDIS", "SD_QUEUE"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**base, "DJANGO_SETTINGS_MODULE": "screwdriver_site.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_redis_the_queue_is_the_database_and_with_it_redis() -> None:
    embedded = json.loads(_settings_of({}).stdout)
    assert embedded["q"]["orm"] == "default" and "redis" not in embedded["q"]
    assert embedded["layers"]["default"]["BACKEND"].endswith("InMemoryChannelLayer")

    url = "redis://redis.internal:6379/3"
    production = json.loads(_settings_of({"SD_REDIS_URL": url, "SD_QUEUE_NAME": "ci"}).stdout)
    assert production["q"]["redis"] == url and "orm" not in production["q"]
    assert production["q"]["name"] == "ci"
    layer = production["layers"]["default"]
    assert layer["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert layer["CONFIG"] == {"hosts": [url], "prefix": "ci:asgi"}

    # Redis for live updates, the database for the queue, when the operator says so.
    kept = json.loads(_settings_of({"SD_REDIS_URL": url, "SD_QUEUE_BROKER": "orm"}).stdout)
    assert kept["q"]["orm"] == "default" and "redis" not in kept["q"]

    refused = _settings_of({"SD_QUEUE_BROKER": "redis"})
    assert refused.returncode != 0
    assert "SD_QUEUE_BROKER=redis needs SD_REDIS_URL" in refused.stderr


@pytest.mark.django_db
def test_a_task_waits_in_this_installations_redis_list_and_metrics_count_it(
    redis_queue: dict[str, str], settings: Any
) -> None:
    tasks_in_table = OrmQ.objects.count()
    async_task("executors.tasks.reap")

    key = f"django_q:{redis_queue['SD_QUEUE_NAME']}:q"
    assert redis.from_url(redis_queue["SD_REDIS_URL"]).llen(key) == 1
    assert get_broker().queue_size() == 1
    assert OrmQ.objects.count() == tasks_in_table
    settings.SD_METRICS_TOKEN = "metrics-token-1234567890"
    page = Client(HTTP_AUTHORIZATION="Bearer metrics-token-1234567890").get("/metrics")
    depth = [
        s.value
        for family in text_string_to_metric_families(page.content.decode())
        for s in family.samples
        if s.name == "sd_task_queue_depth"
    ]
    assert depth == [1]


@pytest.fixture
def stack_env(redis_queue: dict[str, str]) -> dict[str, str]:
    return {**redis_queue, "SD_HOSTNAME": "worker-host-7"}


def _finished(pipeline: Pipeline, sha: str) -> Event | None:
    event = Event.objects.filter(pipeline=pipeline, sha=sha).order_by("-id").first()
    if event is None:
        return None
    statuses = list(Build.objects.filter(event=event).values_list("status", flat=True))
    done = len(statuses) == 2 and not {"QUEUED", "RUNNING", "CREATED", "BLOCKED"} & set(statuses)
    return event if done else None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_reading_the_redis_queue_runs_a_pushed_pipeline(stack, make_repo) -> None:
    repo = make_repo({"screwdriver.yaml": TWO_JOBS})
    owner = User.objects.create_user(username="alice", password="pw-alice-123")
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=owner)
    tasks_in_table = OrmQ.objects.count()

    sha = repo.push({"README.md": "v2"}, "second commit")

    event = wait_until(lambda: _finished(pipeline, sha), timeout=60, what="the event to finish")
    builds = {b.job.name: b for b in Build.objects.filter(event=event).select_related("job")}
    assert {name: b.status for name, b in builds.items()} == {
        "main": "SUCCESS",
        "deploy": "SUCCESS",
    }
    # Started by the worker through Redis (no task row in the database), on the host it names.
    assert OrmQ.objects.count() == tasks_in_table
    assert {b.stats.get("hostname") for b in builds.values()} == {"worker-host-7"}
    assert get_broker().queue_size() == 0


@pytest.mark.django_db
def test_a_start_lost_with_its_worker_is_queued_again_in_redis_by_the_reaper(
    redis_queue: dict[str, str],
) -> None:
    pipeline = make_pipeline(jobs=1, events=1)
    done = Build.objects.filter(job__pipeline=pipeline).first()
    assert done is not None
    lost = Build.objects.create(
        job_id=done.job_id,
        event_id=done.event_id,
        number=99,
        permutation=1,
        status=BuildStatus.QUEUED,
    )
    Build.objects.filter(pk=lost.pk).update(created_at=timezone.now() - REQUEUE_AFTER * 2)
    # The start task was taken from Redis by a worker that died: the list no longer has it.
    get_broker().purge_queue()

    assert reap()["requeued"] == 1

    key = f"django_q:{redis_queue['SD_QUEUE_NAME']}:q"
    (item,) = redis.from_url(redis_queue["SD_REDIS_URL"]).lrange(key, 0, -1)
    task = SignedPackage.loads(item)
    assert (task["func"], tuple(task["args"])) == (START_TASK, (lost.pk,))
    # A build that waits less than that is left to the task it has.
    Build.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(seconds=5))
    assert reap()["requeued"] == 0
