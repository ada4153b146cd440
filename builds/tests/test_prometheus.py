"""GET /metrics: Prometheus's text format, counted from the database, behind the token rule."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from builds.models import Build, BuildStatus, LiveCount, OutboxMessage
from pipelines.tests.factories import make_pipeline

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-1234567890"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def scrape(settings: Any) -> Client:
    settings.SD_METRICS_TOKEN = TOKEN
    return Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")


def test_it_counts_the_builds_that_exist_by_status_and_their_durations(scrape: Client) -> None:
    pipeline = make_pipeline(jobs=2, events=3)
    now = timezone.now()
    ran = list(Build.objects.filter(job__pipeline=pipeline).order_by("id"))
    for build, seconds in zip(ran, [5, 45, 45, 700, 4000], strict=False):
        Build.objects.filter(pk=build.pk).update(
            start_time=now - timedelta(seconds=seconds), end_time=now
        )
    Build.objects.filter(pk=ran[-1].pk).update(status=BuildStatus.FAILURE, end_time=now)
    queued = Build.objects.filter(pk=ran[0].pk).values_list("job_id", "event_id").get()
    Build.objects.create(
        job_id=queued[0], event_id=queued[1], number=99, permutation=1, status=BuildStatus.QUEUED
    )
    OutboxMessage.objects.create(build=ran[0], handler="scm-status", status="SUCCESS", due_at=now)

    response = scrape.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    found = samples(response.content.decode())
    assert found[("sd_builds", (("status", "SUCCESS"),))] == 5
    assert found[("sd_builds", (("status", "FAILURE"),))] == 1
    assert found[("sd_builds", (("status", "QUEUED"),))] == 1
    assert found[("sd_build_queue_depth", ())] == 1
    assert found[("sd_outbox_backlog", ())] == 1
    ok = (("status", "SUCCESS"),)
    bucket = {
        le: found[("sd_build_duration_seconds_bucket", (("le", le), *ok))]
        for le in ("10.0", "60.0", "1200.0", "+Inf")
    }
    assert bucket == {"10.0": 1, "60.0": 3, "1200.0": 4, "+Inf": 5}
    assert found[("sd_build_duration_seconds_count", ok)] == 5
    assert found[("sd_build_duration_seconds_sum", ok)] == pytest.approx(5 + 45 + 45 + 700 + 4000)
    assert found[("sd_build_duration_seconds_count", (("status", "FAILURE"),))] == 0
    assert found[("sd_live_log_connections", ())] == 0


def test_live_connections_are_summed_over_the_processes_that_wrote_lately(
    scrape: Client, settings: Any
) -> None:
    settings.SD_LIVE_HEARTBEAT_SECONDS = 10
    now = timezone.now()
    for process, connections, age in [
        ("api-1:101:aa", 3, 0),
        ("api-2:202:bb", 4, 29),
        # Three heartbeats without a word: that process died with its pages open.
        ("api-3:303:cc", 50, 31),
    ]:
        LiveCount.objects.create(
            process=process, connections=connections, seen_at=now - timedelta(seconds=age)
        )

    found = samples(scrape.get("/metrics").content.decode())

    assert found[("sd_live_log_connections", ())] == 7


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Token {TOKEN}", TOKEN])
def test_with_a_token_set_only_that_bearer_token_reads_it(
    settings: Any, owner: User, header: str | None
) -> None:
    settings.SD_METRICS_TOKEN = TOKEN
    User.objects.filter(pk=owner.pk).update(is_superuser=True)
    client = Client(HTTP_AUTHORIZATION=header) if header else Client()
    client.force_login(owner)  # a superuser's session does not stand in for the token
    response = client.get("/metrics")
    assert response.status_code == 401
    assert b"Authorization: Bearer" in response.content


def test_without_a_token_only_a_signed_in_superuser_reads_it(
    settings: Any, owner: User, member_client: Client
) -> None:
    settings.SD_METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 401
    assert Client(HTTP_AUTHORIZATION="Bearer ").get("/metrics").status_code == 401
    assert member_client.get("/metrics").status_code == 401
    User.objects.filter(pk=owner.pk).update(is_superuser=True)
    admin = Client()
    admin.force_login(owner)
    assert admin.get("/metrics").status_code == 200


def test_the_task_queue_depth_comes_from_the_database_broker_by_default(scrape: Client) -> None:
    from django_q.tasks import async_task

    assert samples(scrape.get("/metrics").content.decode())[("sd_task_queue_depth", ())] == 0
    async_task("executors.tasks.reap")
    async_task("executors.tasks.reap")
    assert samples(scrape.get("/metrics").content.decode())[("sd_task_queue_depth", ())] == 2
