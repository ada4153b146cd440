"""GitHub's own example payloads (npm @octokit/webhooks-examples), signed and delivered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import respx
from django.test import Client

from builds.models import Build, BuildStatus
from conftest import install_npm_packages
from pipelines.models import Event, Job, Pipeline
from pipelines.services import create_pipeline
from scm.models import WebhookDelivery
from scm.tasks import process_delivery
from scm.tests.github_fakes import HEAD_SHA, SECRET, TAG_SHA, deliver, fake_github
from scm.tests.scm_people import repository_admin

ORACLE = Path(__file__).resolve().parents[2] / "oracle" / "webhooks"
PACKAGE = ORACLE / "node_modules" / "@octokit" / "webhooks-examples" / "api.github.com"
# How many examples the pinned version has of each event we answer; a new version that adds
# or drops one makes test_every_example_is_replayed fail rather than silently skip it.
COUNTS = {"push": 7, "pull_request": 29, "create": 5, "release": 13, "ping": 4}
CASES = [(name, index) for name, count in COUNTS.items() for index in range(count)]

PR_UPDATES = ("opened", "reopened", "synchronize")

pytestmark = [pytest.mark.oracle, pytest.mark.xdist_group("oracle-webhooks")]


@pytest.fixture(scope="session")
def examples() -> dict[str, list[dict[str, Any]]]:
    """Install the pinned package once (under a lock) and return its examples by event name."""
    install_npm_packages(ORACLE, what="@octokit/webhooks-examples")
    index = json.loads((PACKAGE / "index.json").read_text())
    return {entry["name"]: entry["examples"] for entry in index}


@pytest.fixture
def pipeline(settings: Any) -> Iterator[Pipeline]:
    """A pipeline on the examples' repository, Codertocat/Hello-World#master."""
    settings.SD_GITHUB_WEBHOOK_SECRET = SECRET
    settings.SD_GITHUB_TOKEN = "server-token"
    settings.SD_GITHUB_API_URL = "https://api.github.com"
    with respx.mock(assert_all_called=False) as router:
        fake_github(router, ("Codertocat/Hello-World", "Octocoders/Hello-World"))
        user = repository_admin("codertocat")
        yield create_pipeline(
            checkout_url="https://github.com/Codertocat/Hello-World.git#master", user=user
        )


def expected(name: str, payload: dict[str, Any]) -> tuple[int, str | None, str | None]:
    """Return (HTTP status, start_from, sha) Screwdriver's mapping gives this payload."""
    if name == "push":
        branch_push = payload["ref"] == "refs/heads/master" and not payload["deleted"]
        return (202, "~commit", payload["after"]) if branch_push else (202, None, None)
    if name == "create":
        return (202, "~tag", TAG_SHA) if payload["ref_type"] == "tag" else (202, None, None)
    if name == "release" and payload["action"] == "published":
        return 202, "~release", TAG_SHA
    if name == "pull_request" and payload["action"] in PR_UPDATES:
        return 202, "~pr", payload["pull_request"]["head"]["sha"]
    if name == "pull_request" and payload["action"] == "closed":
        return 202, "~pr-closed", HEAD_SHA
    # ping, other release and pull-request actions.
    return 200, None, None


def test_every_example_is_replayed(examples: dict[str, list[dict[str, Any]]]) -> None:
    assert {name: len(examples[name]) for name in COUNTS} == COUNTS


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "index"), CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_each_signed_example_gets_screwdrivers_outcome(
    client: Client,
    examples: dict[str, list[dict[str, Any]]],
    pipeline: Pipeline,
    name: str,
    index: int,
) -> None:
    payload = examples[name][index]
    assert pipeline.last_seen_sha == HEAD_SHA
    status, start_from, sha = expected(name, payload)
    earlier: list[int] = []
    if name == "pull_request" and payload["action"] in ("synchronize", "closed"):
        # The pull request was opened before: its builds are running when this one arrives.
        opened = deliver(client, name, {**payload, "action": "opened"}, delivery="opened")
        process_delivery(WebhookDelivery.objects.get(delivery_id="opened").pk)
        assert opened.status_code == 202
        earlier = list(Build.objects.values_list("pk", flat=True))
        assert earlier
    response = deliver(client, name, payload, delivery=f"{name}-{index}")
    assert response.status_code == status, response.content
    delivery = WebhookDelivery.objects.get(delivery_id=f"{name}-{index}")
    if status == 202:
        process_delivery(delivery.pk)
        delivery.refresh_from_db()
        assert delivery.outcome == WebhookDelivery.Outcome.DONE, delivery.message
    else:
        assert delivery.outcome == WebhookDelivery.Outcome.IGNORED
    events = list(Event.objects.exclude(builds__pk__in=earlier))
    if start_from is None:
        assert events == []
    else:
        assert [(e.pipeline_id, e.start_from, e.sha) for e in events] == [
            (pipeline.pk, start_from, sha)
        ]
        assert delivery.events == [events[0].pk]
    if start_from == "~pr":
        event = events[0]
        assert (event.type, event.pr_num) == ("pr", payload["number"])
        assert [b.job.name for b in event.builds.all()] == [f"PR-{payload['number']}:test"]
    # Earlier builds of the same pull request were aborted by the update or the close.
    aborted = Build.objects.filter(pk__in=earlier, status=BuildStatus.ABORTED).count()
    assert aborted == len(earlier)
    if payload.get("action") == "closed":
        assert Job.objects.get(name=f"PR-{payload['number']}:test").archived
    # The same delivery again is refused and changes nothing.
    before = Event.objects.count()
    assert deliver(client, name, payload, delivery=f"{name}-{index}").status_code == 409
    assert Event.objects.count() == before
