"""Screwdriver's metrics routes for pipelines, jobs and events: fields, options, rights."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from builds import services
from builds.models import Build, BuildStatus, Step
from pipelines.models import Event, Pipeline
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml
from screwdriver_site.api.tokens import issue_user_token

pytestmark = pytest.mark.django_db

YAML = """
shared:
  image: node:20
jobs:
  main:
    requires: [~commit]
    steps:
      - build: echo build
  publish:
    requires: [main]
    steps:
      - publish: echo publish
"""
T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


def at(seconds: float) -> Any:
    return time_machine.travel(T0 + timedelta(seconds=seconds), tick=False)


def run(build: Build, *, start: float, end: float, status: str = BuildStatus.SUCCESS) -> None:
    """Run one build through the services, its steps taking its whole run."""
    with at(start):
        services.mark_running(build_id=build.pk)
    Step.objects.filter(build=build).update(
        start_time=T0 + timedelta(seconds=start), end_time=T0 + timedelta(seconds=end), code=0
    )
    with at(end):
        services.finish_build(build_id=build.pk, status=status)


def build_of(event: Event, job: str) -> Build:
    return Build.objects.get(event=event, job__name=job)


def seeded_event(pipeline: Pipeline, *, offset: float = 0, fail: bool = True) -> Event:
    """main queued at +0, runs 10-70; publish queued at 70, runs 75-100 (and fails)."""
    with at(offset):
        event = event_from_yaml(pipeline, YAML)
    run(build_of(event, "main"), start=offset + 10, end=offset + 70)
    status = BuildStatus.FAILURE if fail else BuildStatus.SUCCESS
    run(build_of(event, "publish"), start=offset + 75, end=offset + 100, status=status)
    return event


@pytest.fixture
def pipeline(owner: User) -> Pipeline:
    return pipeline_from_yaml(YAML, owner=owner)


def client_of(username: str) -> APIClient:
    client = APIClient()
    with at(3600):  # the time every request is made at
        token = issue_user_token(username=username, is_admin=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def api(owner: User) -> APIClient:
    return client_of("alice")


def get(client: APIClient, path: str, **query: Any) -> Any:
    with at(3600):
        return client.get(f"/v4/{path}", query)


def test_event_metrics_list_each_build_with_its_queue_and_run_times(
    pipeline: Pipeline, api: APIClient
) -> None:
    event = seeded_event(pipeline)
    response = get(api, f"events/{event.pk}/metrics")
    assert response.status_code == 200, response.content
    main, publish = response.json()
    assert main == {
        "id": build_of(event, "main").pk,
        "jobId": build_of(event, "main").job_id,
        "eventId": event.pk,
        "createTime": "2026-03-02T09:00:00.000Z",
        "startTime": "2026-03-02T09:00:10.000Z",
        "endTime": "2026-03-02T09:01:10.000Z",
        "duration": 60,
        "status": "SUCCESS",
        "queuedTime": 10,
        "imagePullTime": None,
        "meta": main["meta"],
    }
    assert (publish["queuedTime"], publish["duration"], publish["status"]) == (5, 25, "FAILURE")


def test_job_metrics_give_each_build_with_its_steps_or_averages_per_day(
    pipeline: Pipeline, api: APIClient
) -> None:
    first = seeded_event(pipeline)
    seeded_event(pipeline, offset=200, fail=False)
    job = build_of(first, "main").job
    rows = get(api, f"jobs/{job.pk}/metrics").json()
    assert [(r["eventId"] == first.pk, r["duration"], r["status"]) for r in rows] == [
        (True, 60, "SUCCESS"),
        (False, 60, "SUCCESS"),
    ]
    assert set(rows[0]) == {
        "id",
        "jobId",
        "eventId",
        "createTime",
        "sha",
        "status",
        "duration",
        "steps",
    }
    steps = {s["name"]: (s["duration"], s["code"]) for s in rows[0]["steps"]}
    assert steps["build"] == (60, 0)
    daily = get(api, f"jobs/{job.pk}/metrics", aggregateInterval="day").json()
    assert daily == [{"createTime": "2026-03-02T09:00:00.000Z", "duration": 60.0}]


def test_pipeline_metrics_sum_each_event_and_measure_downtime(
    pipeline: Pipeline, api: APIClient
) -> None:
    red = seeded_event(pipeline)
    green = seeded_event(pipeline, offset=200, fail=False)
    rows = get(api, f"pipelines/{pipeline.pk}/metrics").json()
    assert [r["id"] for r in rows] == [red.pk, green.pk]
    first = rows[0]
    assert {k: first[k] for k in ("duration", "queuedTime", "imagePullTime", "status")} == {
        "duration": 90,
        "queuedTime": 15,
        "imagePullTime": 0,
        "status": "FAILURE",
    }
    assert first["isDowntimeEvent"] is True and rows[1]["isDowntimeEvent"] is False
    # Red from its last build's end (100 s) until now (3600 s): no later red event ends it.
    assert first["downtimeDuration"] == 3500
    assert [b["jobId"] for b in first["builds"]] == [b.job_id for b in red.builds.order_by("id")]
    assert (first["sha"], first["causeMessage"]) == (red.sha, red.cause_message)
    # Only publish's failures count as downtime here, and only SUCCESS: the green event is down.
    publish_job = build_of(red, "publish").job_id
    rows = get(
        api,
        f"pipelines/{pipeline.pk}/metrics",
        **{"downtimeJobs[]": [publish_job], "downtimeStatuses[]": ["SUCCESS"]},
    ).json()
    assert [r["isDowntimeEvent"] for r in rows] == [False, True]
    paged = get(api, f"pipelines/{pipeline.pk}/metrics", page=1, count=1, sort="descending")
    assert [r["id"] for r in paged.json()] == [green.pk]
    weekly = get(api, f"pipelines/{pipeline.pk}/metrics", aggregateInterval="week").json()
    assert weekly == [
        {
            "createTime": "2026-03-02T09:00:00.000Z",
            "duration": 90.0,
            "queuedTime": 15.0,
            "imagePullTime": None,
        }
    ]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"startTime": "yesterday"}, "startTime must be an ISO 8601"),
        ({"startTime": "2025-01-01", "endTime": "2026-01-01"}, "longer than 180 days"),
        ({"startTime": "2026-01-02", "endTime": "2026-01-01"}, "must not be before"),
        ({"endTime": "0001-01-01T00:00:00Z"}, "too early"),
        ({"aggregateInterval": "hour"}, "aggregateInterval must be one of"),
        ({"downtimeStatuses[]": "RED"}, "not RED"),
        ({"downtimeJobs[]": "main"}, "job ids"),
        ({"count": "0"}, "count must be a whole number"),
        ({"page": "x"}, "page must be a whole number"),
    ],
)
def test_a_bad_query_value_is_a_400_that_says_what_was_wrong(
    pipeline: Pipeline, api: APIClient, query: dict[str, str], message: str
) -> None:
    response = get(api, f"pipelines/{pipeline.pk}/metrics", **query)
    assert response.status_code == 400
    assert message in str(response.json())


def test_metrics_of_a_private_pipeline_are_refused_to_people_without_a_role(
    owner: User, member: User
) -> None:
    private = pipeline_from_yaml(YAML, owner=owner, name="local/private", private=True)
    event = seeded_event(private)
    bob = client_of("bob")
    job = build_of(event, "main").job_id
    for path in (f"pipelines/{private.pk}", f"jobs/{job}", f"events/{event.pk}"):
        assert get(bob, f"{path}/metrics").status_code == 403
    assert get(APIClient(), f"events/{event.pk}/metrics").status_code == 401


def test_the_number_of_queries_does_not_grow_with_events_or_builds(
    pipeline: Pipeline, api: APIClient, django_assert_max_num_queries: Any
) -> None:
    event = seeded_event(pipeline)
    job = build_of(event, "main").job_id
    paths = [f"pipelines/{pipeline.pk}", f"jobs/{job}", f"events/{event.pk}"]
    few = {}
    for path in paths:
        with django_assert_max_num_queries(20) as captured:
            assert get(api, f"{path}/metrics").status_code == 200
        few[path] = len(captured.captured_queries)
    for n in range(1, 4):
        seeded_event(pipeline, offset=200 * n)
    for path in paths:
        with django_assert_max_num_queries(few[path]):
            get(api, f"{path}/metrics")
