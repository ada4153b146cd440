"""An API outage during a build delays its reports and loses none of them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from builds.dispatch import reap
from builds.logs import read_page
from builds.models import FINISHED_STATUSES, Build, BuildStatus, Step
from conftest import GitRepo, Stack, wait_until
from executors.tests.outage_proxy import OutageProxy
from pipelines.services import Creator, create_pipeline, start_event

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LINES = 300
YAML = f"""
jobs:
  main:
    image: buildpack-deps
    steps:
      - first: echo before
      - count: i=1; while [ $i -le {LINES} ]; do echo "line $i"; i=$((i+1)); sleep 0.03; done
      - last: echo after
"""


@pytest.fixture
def proxied(stack: Stack, settings: object) -> Iterator[tuple[Stack, OutageProxy]]:
    """The stack, with builds reaching the API through a proxy the test can take down."""
    proxy = OutageProxy(urlsplit(stack.url).port or 80)
    stack.stop_worker()
    stack.env["SD_API_URL"] = proxy.url
    stack.start_worker()
    yield stack, proxy
    proxy.close()


def _lines(build: Build, step: str) -> list[str]:
    page = read_page(step=Step.objects.get(build=build, name=step), pages=100)
    return [line["m"] for line in page.lines]


def test_a_build_that_runs_through_an_api_outage_reports_everything_once_it_is_back(
    proxied: tuple[Stack, OutageProxy], make_repo: Callable[..., GitRepo]
) -> None:
    _, proxy = proxied
    admin = User.objects.create_superuser(username="admin")
    pipeline = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": YAML}).checkout_url, user=admin
    )
    event = start_event(
        pipeline=pipeline, start_from="main", creator=Creator(name="Admin", username="admin")
    )
    build = Build.objects.get(event=event)

    def counting() -> bool:
        step = Step.objects.get(build=build, name="count")
        return step.start_time is not None and bool(read_page(step=step).lines)

    wait_until(counting, timeout=60, what="the count step to print")
    proxy.down()
    try:
        # Longer than the lease (4 s here): the reaper sees a lapsed lease, but a launcher
        # that still runs is not lost.
        wait_until(
            lambda: Build.objects.filter(pk=build.pk, lease_expires_at__lt=timezone.now()).exists(),
            timeout=30,
            what="the lease to lapse",
        )
        reap()
        assert Build.objects.get(pk=build.pk).status == BuildStatus.RUNNING
        time.sleep(8)  # the build goes on printing and finishing meanwhile
    finally:
        proxy.up()

    def finished() -> Build | None:
        row = Build.objects.get(pk=build.pk)
        return row if row.status in FINISHED_STATUSES else None

    build = wait_until(finished, timeout=90, what="the build to report its end")
    assert build.status == BuildStatus.SUCCESS, build.status_message
    assert _lines(build, "first") == ["before"]
    assert _lines(build, "count") == [f"line {i}" for i in range(1, LINES + 1)]
    assert _lines(build, "last") == ["after"]
    steps = {step.name: step for step in Step.objects.filter(build=build)}
    assert all(steps[name].code == 0 for name in ("first", "count", "last"))
