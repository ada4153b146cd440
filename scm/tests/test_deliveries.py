"""Webhook deliveries are acted on at least once, and their effects happen once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db.models import F
from django.utils import timezone
from django_q.brokers import get_broker

from conftest import GitRepo, Stack, wait_until
from pipelines.models import Event
from pipelines.services import create_pipeline
from scm.deliveries import CLAIM_LEASE, MAX_ATTEMPTS, REDELIVER_AFTER, redeliver_stuck
from scm.models import WebhookDelivery
from scm.tests.github_fakes import post_delivery
from scm.tests.github_server import FakeGitHub
from scm.tests.scm_people import repository_admin

YAML = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - build: echo main
"""


def queued(
    name: str,
    *,
    handed_out_ago: timedelta,
    claimed_ago: timedelta | None = None,
    attempts: int = 0,
) -> WebhookDelivery:
    now = timezone.now()
    return WebhookDelivery.objects.create(
        scm="github",
        delivery_id=name,
        event_name="push",
        payload={},
        outcome=WebhookDelivery.Outcome.QUEUED,
        attempts=attempts,
        enqueued_at=now - handed_out_ago,
        processed_at=None if claimed_ago is None else now - claimed_ago,
    )


@pytest.mark.django_db
def test_a_delivery_never_claimed_or_whose_claim_lapsed_is_handed_out_again() -> None:
    long_ago = REDELIVER_AFTER + timedelta(seconds=5)
    lost = queued("lost-task", handed_out_ago=long_ago)
    dead = queued(
        "dead-worker", handed_out_ago=long_ago, claimed_ago=CLAIM_LEASE + timedelta(seconds=5)
    )
    working = queued("working", handed_out_ago=long_ago, claimed_ago=timedelta(seconds=5))
    fresh = queued("fresh", handed_out_ago=timedelta(seconds=5))
    tasks_before = get_broker().queue_size()

    assert redeliver_stuck() == {"redelivered": 2, "given_up": 0}

    for row in (lost, dead, working, fresh):
        row.refresh_from_db()
    assert lost.enqueued_at is not None and dead.enqueued_at is not None
    assert timezone.now() - lost.enqueued_at < timedelta(seconds=5)
    assert timezone.now() - dead.enqueued_at < timedelta(seconds=5)
    assert get_broker().queue_size() == tasks_before + 2
    # Handed out just now: the next sweep leaves them to their workers.
    assert redeliver_stuck() == {"redelivered": 0, "given_up": 0}


@pytest.mark.django_db
def test_a_backed_up_queue_never_gives_a_delivery_up_only_dead_workers_do() -> None:
    waiting = queued("waiting", handed_out_ago=timedelta(minutes=10))
    for _ in range(MAX_ATTEMPTS + 2):
        WebhookDelivery.objects.filter(pk=waiting.pk).update(
            enqueued_at=timezone.now() - timedelta(minutes=10)
        )
        assert redeliver_stuck()["given_up"] == 0
    waiting.refresh_from_db()
    assert waiting.outcome == WebhookDelivery.Outcome.QUEUED and waiting.attempts == 0


@pytest.mark.django_db
def test_a_delivery_that_keeps_killing_its_worker_is_given_up_with_a_message() -> None:
    poison = queued(
        "poison",
        attempts=MAX_ATTEMPTS,
        handed_out_ago=timedelta(minutes=10),
        claimed_ago=timedelta(minutes=5),
    )

    assert redeliver_stuck() == {"redelivered": 0, "given_up": 1}

    poison.refresh_from_db()
    assert poison.outcome == WebhookDelivery.Outcome.FAILED
    assert f"Given up after {MAX_ATTEMPTS} attempts" in poison.message


@pytest.mark.django_db
def test_finished_and_ignored_deliveries_are_never_handed_out_again() -> None:
    old = timezone.now() - timedelta(hours=1)
    for outcome in ("done", "failed", "ignored"):
        WebhookDelivery.objects.create(
            scm="github", delivery_id=outcome, event_name="push", outcome=outcome, enqueued_at=old
        )
    assert redeliver_stuck() == {"redelivered": 0, "given_up": 0}


def _push(sha: str, full_name: str) -> dict[str, Any]:
    return {
        "ref": "refs/heads/main",
        "after": sha,
        "commits": [{"added": ["notes.txt"], "modified": [], "removed": []}],
        "head_commit": {"message": "add notes"},
        "repository": {"full_name": full_name, "default_branch": "main"},
        "sender": {"login": "octocat"},
    }


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_delivery_whose_worker_died_mid_way_is_processed_later_and_starts_one_event(
    github_stack: tuple[Stack, FakeGitHub], make_repo: Callable[..., GitRepo]
) -> None:
    stack, github = github_stack
    repo = make_repo({"screwdriver.yaml": YAML}, name="app")
    full_name = "octo-org/app"
    github.repos[full_name] = repo.bare
    pipeline = create_pipeline(
        checkout_url=f"https://127.0.0.1/{full_name}.git#main", user=repository_admin("octocat")
    )
    events_before = Event.objects.filter(pipeline=pipeline).count()
    sha = repo.push({"notes.txt": "a note\n"}, "add notes")

    # GitHub is slow to answer the worker, and the worker dies while it waits.
    github.hold.set()
    response = post_delivery(stack.url, "push", _push(sha, full_name), delivery="killed-mid-way")
    assert response.status_code == 202, response.text
    wait_until(lambda: github.held, timeout=30, what="the worker to ask GitHub for the config")
    stack.kill_worker()
    github.hold.clear()

    delivery = WebhookDelivery.objects.get(delivery_id="killed-mid-way")
    assert delivery.outcome == WebhookDelivery.Outcome.QUEUED
    assert Event.objects.filter(pipeline=pipeline).count() == events_before

    # A new worker; the sweep finds the delivery unfinished and hands it out again. The task
    # the dead worker held is redelivered by the queue too: it must not act a second time.
    stack.start_worker()
    # Three minutes pass (the worker runs on the real clock: the rows are aged instead).
    aged = timedelta(minutes=3)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        processed_at=F("processed_at") - aged, enqueued_at=F("enqueued_at") - aged
    )
    assert redeliver_stuck() == {"redelivered": 1, "given_up": 0}

    def done() -> WebhookDelivery | None:
        row = WebhookDelivery.objects.get(pk=delivery.pk)
        return row if row.outcome != WebhookDelivery.Outcome.QUEUED else None

    delivery = wait_until(done, timeout=60, what="the delivery to be processed")
    assert delivery.outcome == WebhookDelivery.Outcome.DONE, delivery.message
    started = list(Event.objects.filter(pipeline=pipeline, sha=sha))
    assert [event.pk for event in started] == delivery.events
    assert len(started) == 1
