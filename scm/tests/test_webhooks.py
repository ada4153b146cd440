"""POST /v4/webhooks for GitHub: verification, idempotency, the dispatch table, the mapping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from builds.launch import launch_spec
from builds.models import Build, BuildStatus
from pipelines.models import Event, Job, Pipeline
from pipelines.services import create_pipeline, set_secret
from scm.deliveries import CLAIM_LEASE
from scm.models import WebhookDelivery
from scm.tasks import process_delivery
from scm.tests.github_fakes import (
    API,
    CONFIG,
    HEAD_SHA,
    SECRET,
    TAG_SHA,
    deliver,
    fake_github,
    signature,
)
from scm.tests.scm_people import repository_admin

PUSH_SHA = "c" * 40

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def github(settings: Any) -> Iterator[respx.Router]:
    """GitHub's settings, and its API answered at the HTTP boundary."""
    settings.SD_GITHUB_WEBHOOK_SECRET = SECRET
    settings.SD_GITHUB_TOKEN = "server-token"
    settings.SD_GITHUB_API_URL = "https://api.github.com"
    with respx.mock(assert_all_called=False) as router:
        fake_github(router, ("Codertocat/Hello-World", "Octocoders/Other"))
        yield router


@pytest.fixture
def pipelines() -> tuple[Pipeline, Pipeline]:
    """Pipeline A on Codertocat/Hello-World#master, pipeline B on another repository."""
    user = repository_admin("octo")
    a = create_pipeline(
        checkout_url="https://github.com/Codertocat/Hello-World.git#master", user=user
    )
    b = create_pipeline(checkout_url="git@github.com:Octocoders/Other.git#master", user=user)
    return a, b


def push(repo: str = "Codertocat/Hello-World", *, message: str = "change") -> dict[str, Any]:
    return {
        "ref": "refs/heads/master",
        "before": HEAD_SHA,
        "after": PUSH_SHA,
        "deleted": False,
        "head_commit": {"id": PUSH_SHA, "message": message},
        "repository": {"full_name": repo, "default_branch": "master"},
        "sender": {"login": "Codertocat"},
    }


def work(response: Any) -> WebhookDelivery:
    """Run the worker's task for an accepted delivery, as django-q2 would."""
    assert response.status_code == 202, response.content
    delivery = WebhookDelivery.objects.get(delivery_id=response.json()["deliveryId"])
    process_delivery(delivery.pk)
    delivery.refresh_from_db()
    return delivery


def test_a_signed_push_to_the_pipeline_branch_runs_commit_jobs(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    a, _ = pipelines
    delivery = work(deliver(client, "push", push(), delivery="d-1"))
    event = Event.objects.get()
    assert (event.pipeline, event.sha, event.start_from) == (a, PUSH_SHA, "~commit")
    assert [build.job.name for build in event.builds.all()] == ["main"]
    assert delivery.outcome == WebhookDelivery.Outcome.DONE and delivery.events == [event.pk]


def test_a_push_with_skip_ci_starts_nothing(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    for n, message in enumerate(["fix [skip ci]", "docs [CI SKIP] only"]):
        delivery = work(deliver(client, "push", push(message=message), delivery=f"d-{n}"))
        assert delivery.outcome == WebhookDelivery.Outcome.DONE and delivery.events == []
    assert not Event.objects.exists()


def test_a_push_to_another_branch_runs_the_jobs_that_ask_for_it(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    work(deliver(client, "push", {**push(), "ref": "refs/heads/feature-x"}, delivery="d-1"))
    work(deliver(client, "push", {**push(), "ref": "refs/heads/other"}, delivery="d-2"))
    event = Event.objects.get()
    assert event.start_from == "~commit:feature-x"
    assert [build.job.name for build in event.builds.all()] == ["feature"]


def test_a_tag_runs_tag_jobs_at_the_tagged_commit(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    payload = {
        "ref": "v1.0",
        "ref_type": "tag",
        "repository": {"full_name": "Codertocat/Hello-World", "default_branch": "master"},
    }
    work(deliver(client, "create", payload, delivery="d-1"))
    event = Event.objects.get()
    assert (event.pipeline, event.sha, event.start_from) == (pipelines[0], TAG_SHA, "~tag")
    assert [build.job.name for build in event.builds.all()] == ["tagged"]


def test_a_published_release_runs_release_jobs_and_other_actions_are_ignored(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    repository = {"full_name": "Codertocat/Hello-World", "default_branch": "master"}
    release = {"tag_name": "v1.0"}
    ignored = deliver(
        client,
        "release",
        {"action": "created", "release": release, "repository": repository},
        delivery="d-0",
    )
    assert ignored.status_code == 200 and ignored.json()["outcome"] == "ignored"
    payload = {"action": "published", "release": release, "repository": repository}
    work(deliver(client, "release", payload, delivery="d-1"))
    event = Event.objects.get()
    assert (event.sha, event.start_from) == (TAG_SHA, "~release")
    assert [build.job.name for build in event.builds.all()] == ["released"]


def test_ping_and_unknown_events_are_answered_and_ignored(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    for n, event in enumerate(["ping", "issues", "star"]):
        # GitHub's bodies differ (hook ids, times, random zen): identical ones are a replay.
        response = deliver(client, event, {"zen": f"x{n}"}, delivery=f"d-{n}")
        assert response.status_code == 200
        assert response.json()["outcome"] == "ignored"
    assert not Event.objects.exists()


def test_a_delivery_for_one_repository_never_triggers_another(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    _, b = pipelines
    work(deliver(client, "push", push("Octocoders/Hello-World"), delivery="d-1"))
    work(deliver(client, "push", push("codertocat/hello-world-2"), delivery="d-2"))
    assert not Event.objects.exists()
    work(deliver(client, "push", push("Octocoders/Other"), delivery="d-3"))
    assert list(Event.objects.values_list("pipeline", flat=True)) == [b.pk]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "forged"),
        ({"X-Hub-Signature-256": ""}, "missing"),
        ({"X-Hub-Signature-256": "sha256=zz"}, "malformed"),
        ({"X-Hub-Signature-256": "sha1=0123456789abcdef0123456789abcdef01234567"}, "sha1"),
    ],
)
def test_forged_missing_malformed_and_sha1_signatures_are_refused(
    client: Client, pipelines: tuple[Pipeline, Pipeline], headers: dict[str, str], reason: str
) -> None:
    body = json.dumps(push()).encode()
    sha1 = {"X-Hub-Signature": "sha1=0123456789abcdef0123456789abcdef01234567"}
    response = deliver(
        client, "push", body, delivery="d-1", sig=headers["X-Hub-Signature-256"], extra=sha1
    )
    assert response.status_code == 401, reason
    assert not WebhookDelivery.objects.exists() and not Event.objects.exists()


def test_a_body_signed_with_another_secret_is_refused(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    body = json.dumps(push()).encode()
    response = deliver(client, "push", body, delivery="d-1", sig=signature(body, "other"))
    assert response.status_code == 401
    assert not WebhookDelivery.objects.exists()


def test_a_replayed_delivery_is_refused_and_starts_nothing_more(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    work(deliver(client, "push", push(), delivery="d-1"))
    again = deliver(client, "push", push(), delivery="d-1")
    assert again.status_code == 409
    assert again.json()["message"] == "Delivery d-1 was already received."
    assert Event.objects.count() == 1


def test_a_replayed_body_under_a_new_delivery_id_changes_nothing(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    # A release starts an event per delivery, so a replay that got through would run again.
    repository = {"full_name": "Codertocat/Hello-World", "default_branch": "master"}
    body = json.dumps(
        {"action": "published", "release": {"tag_name": "v1.0"}, "repository": repository}
    ).encode()
    work(deliver(client, "release", body, delivery="d-1"))
    builds = Build.objects.count()

    replay = deliver(client, "release", body, delivery="d-2")

    assert replay.status_code == 409, replay.content
    assert "repeats the body of a delivery already received" in replay.json()["message"]
    assert list(WebhookDelivery.objects.values_list("delivery_id", flat=True)) == ["d-1"]
    assert Event.objects.count() == 1
    assert Build.objects.count() == builds


def test_a_task_run_twice_acts_once(client: Client, pipelines: tuple[Pipeline, Pipeline]) -> None:
    delivery = work(
        deliver(client, "push", {**push(), "ref": "refs/heads/feature-a"}, delivery="x")
    )
    process_delivery(delivery.pk)
    assert Event.objects.count() == 1


def test_an_oversized_delivery_is_refused_before_it_is_read(
    client: Client, settings: Any, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    settings.SD_WEBHOOK_MAX_BYTES = 1024
    body = json.dumps({**push(), "pad": "x" * 2048}).encode()
    response = deliver(client, "push", body, delivery="d-1")
    assert response.status_code == 413
    assert not WebhookDelivery.objects.exists() and not Event.objects.exists()


def test_deliveries_are_refused_while_no_secret_is_configured(
    client: Client, settings: Any, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    settings.SD_GITHUB_WEBHOOK_SECRET = ""
    response = deliver(client, "push", push(), delivery="d-1", sig=signature(b"", ""))
    assert response.status_code == 403
    assert not WebhookDelivery.objects.exists()


def test_a_delivery_without_github_headers_is_a_bad_request(client: Client) -> None:
    body = json.dumps(push()).encode()
    no_event = client.post("/v4/webhooks", data=body, content_type="application/json")
    assert no_event.status_code == 400
    no_id = client.post(
        "/v4/webhooks",
        data=body,
        content_type="application/json",
        headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": signature(body)},
    )
    assert no_id.status_code == 400
    assert not WebhookDelivery.objects.exists()


def test_creating_a_github_pipeline_registers_the_signed_webhook(
    github: respx.Router, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    calls = [c for c in github.calls if c.request.method == "POST"]
    hooks = [json.loads(c.request.content) for c in calls]
    assert [c.request.url.path for c in calls] == [
        "/repos/Codertocat/Hello-World/hooks",
        "/repos/Octocoders/Other/hooks",
    ]
    assert hooks[0]["config"]["secret"] == SECRET
    assert hooks[0]["config"]["url"].endswith("/v4/webhooks")
    assert set(hooks[0]["events"]) >= {"push", "create", "release", "pull_request"}
    assert all(c.request.headers["Authorization"] == "Bearer server-token" for c in calls)
    assert all(p.hook_installed for p in pipelines)


def pull_request(
    action: str, *, sha: str, fork: bool = True, base: str = "master"
) -> dict[str, Any]:
    head_repo = "mallory/Hello-World" if fork else "Codertocat/Hello-World"
    return {
        "action": action,
        "number": 7,
        "pull_request": {
            "number": 7,
            "title": "Change things",
            "html_url": "https://github.com/Codertocat/Hello-World/pull/7",
            "head": {"sha": sha, "ref": "patch", "repo": {"full_name": head_repo}},
            "base": {"ref": base, "repo": {"full_name": "Codertocat/Hello-World"}},
        },
        "repository": {"full_name": "Codertocat/Hello-World", "default_branch": "master"},
        "sender": {"login": "mallory"},
    }


def test_a_fork_pull_request_build_gets_only_allow_in_pr_secrets_even_when_restarted(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    a, _ = pipelines
    set_secret(pipeline=a, name="TOKEN", value="never-in-a-pr")
    set_secret(pipeline=a, name="PR_TOKEN", value="fine-in-a-pr", allow_in_pr=True)
    work(deliver(client, "pull_request", pull_request("opened", sha=PUSH_SHA), delivery="d-1"))
    build = Build.objects.select_related("job", "event").get()
    assert (build.job.name, build.event.type, build.event.pr_num) == ("PR-7:test", "pr", 7)
    assert build.event.pr["fork"] is True
    assert launch_spec(build)["secrets"] == {"PR_TOKEN": "fine-in-a-pr"}
    # A restart through the API never turns the PR build into one that sees every secret.
    api = APIClient()
    api.force_authenticate(user=a.creator)
    response = api.post("/v4/events", {"buildId": build.pk}, format="json")
    assert response.status_code == 201, response.content
    restarted = Build.objects.select_related("job", "event").exclude(pk=build.pk).get()
    assert (restarted.job.name, restarted.event.type, restarted.event.pr_num) == (
        "PR-7:test",
        "pr",
        7,
    )
    assert restarted.event.parent_event_id == build.event_id
    assert launch_spec(restarted)["secrets"] == {"PR_TOKEN": "fine-in-a-pr"}


def test_a_synchronize_aborts_the_previous_builds_of_that_pull_request_only(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    work(deliver(client, "pull_request", pull_request("opened", sha=PUSH_SHA), delivery="d-1"))
    other = {**pull_request("opened", sha=PUSH_SHA), "number": 8}
    work(deliver(client, "pull_request", other, delivery="d-2"))
    first, eight = Build.objects.order_by("pk")
    work(deliver(client, "pull_request", pull_request("synchronize", sha=TAG_SHA), delivery="d-3"))
    first.refresh_from_db()
    eight.refresh_from_db()
    assert first.status == BuildStatus.ABORTED and eight.status != BuildStatus.ABORTED
    latest = Event.objects.latest("pk")
    assert (latest.sha, latest.pr_num, latest.type) == (TAG_SHA, 7, "pr")


def test_closing_a_pull_request_aborts_archives_and_runs_pr_closed(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    work(deliver(client, "pull_request", pull_request("opened", sha=PUSH_SHA), delivery="d-1"))
    work(deliver(client, "pull_request", pull_request("closed", sha=PUSH_SHA), delivery="d-2"))
    assert Build.objects.get(job__name="PR-7:test").status == BuildStatus.ABORTED
    assert Job.objects.get(name="PR-7:test").archived
    closed = Event.objects.latest("pk")
    assert (closed.type, closed.start_from) == ("pipeline", "~pr-closed")
    assert [b.job.name for b in closed.builds.all()] == ["cleanup"]


def test_a_pull_request_into_another_branch_runs_nothing_here(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    payload = pull_request("opened", sha=PUSH_SHA, base="release")
    assert work(deliver(client, "pull_request", payload, delivery="d-1")).events == []
    assert not Event.objects.exists()


def test_a_pull_request_into_staging_runs_the_jobs_that_ask_for_it_on_the_master_pipeline(
    client: Client, github: respx.Router
) -> None:
    staging_pr = (
        b"  staging-pr:\n    image: node:20\n    requires: [~pr:staging]\n    steps: [t: x]\n"
    )
    config_url = f"{API}/repos/Codertocat/Hello-World/contents/screwdriver.yaml"
    github.get(config_url, name="config:Codertocat/Hello-World").mock(
        return_value=httpx.Response(200, content=CONFIG + staging_pr)
    )
    a = create_pipeline(
        checkout_url="https://github.com/Codertocat/Hello-World.git#master",
        user=repository_admin("octo"),
    )
    into_master = {**pull_request("opened", sha=PUSH_SHA), "number": 8}
    work(deliver(client, "pull_request", into_master, delivery="d-1"))
    payload = pull_request("opened", sha=PUSH_SHA, base="staging")
    work(deliver(client, "pull_request", payload, delivery="d-2"))
    into_staging = Event.objects.get(pr_num=7)
    assert (into_staging.pipeline, into_staging.start_from) == (a, "~pr:staging")
    build = into_staging.builds.select_related("job").get()
    assert build.job.name == "PR-7:staging-pr"
    assert launch_spec(build)["checkout"]["branch"] == "staging"
    into_master_jobs = Build.objects.filter(event__pr_num=8).values_list("job__name", flat=True)
    assert list(into_master_jobs) == ["PR-8:test"]


def test_a_push_to_the_branch_keeps_open_pull_request_jobs(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    work(deliver(client, "pull_request", pull_request("opened", sha=PUSH_SHA), delivery="d-1"))
    work(deliver(client, "push", push(), delivery="d-2"))
    assert not Job.objects.get(name="PR-7:test").archived


def test_a_delivery_github_cannot_complete_is_recorded_as_failed_and_starts_nothing(
    client: Client, github: respx.Router, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    github.routes["tags:Codertocat/Hello-World"].return_value = httpx.Response(404)
    payload = {
        "ref": "v9",
        "ref_type": "tag",
        "repository": {"full_name": "Codertocat/Hello-World", "default_branch": "master"},
    }
    delivery = work(deliver(client, "create", payload, delivery="d-1"))
    assert delivery.outcome == WebhookDelivery.Outcome.FAILED
    assert "GitHub has no" in delivery.message
    assert not Event.objects.exists()


def _died_after_its_work(delivery: WebhookDelivery) -> None:
    """What a worker that did the handler's work and died before recording it leaves."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        outcome=WebhookDelivery.Outcome.QUEUED,
        events=[],
        processed_at=timezone.now() - CLAIM_LEASE - timedelta(seconds=1),
    )


TAG = {
    "ref": "v1.0",
    "ref_type": "tag",
    "repository": {"full_name": "Codertocat/Hello-World", "default_branch": "master"},
}


@pytest.mark.parametrize(
    ("event_name", "payload"),
    [
        ("push", push()),
        ("push", {**push(), "ref": "refs/heads/feature-x"}),
        ("create", TAG),
        ("pull_request", pull_request("opened", sha=PUSH_SHA)),
    ],
    ids=["push to the branch", "push to another branch", "tag", "pull request"],
)
def test_a_delivery_handled_again_after_its_worker_died_starts_nothing_twice(
    client: Client, pipelines: tuple[Pipeline, Pipeline], event_name: str, payload: dict[str, Any]
) -> None:
    first = work(deliver(client, event_name, payload, delivery="d-1"))
    assert len(first.events) == 1
    _died_after_its_work(first)

    again = work_again(first)

    assert again.outcome == WebhookDelivery.Outcome.DONE and again.attempts == 2
    assert again.events == first.events
    assert Event.objects.count() == 1
    # Its builds were left running, not stopped as a pull request's older builds are.
    assert not Build.objects.filter(status=BuildStatus.ABORTED).exists()


def test_a_closed_pull_request_handled_again_runs_pr_closed_once(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    work(deliver(client, "pull_request", pull_request("opened", sha=PUSH_SHA), delivery="d-1"))
    closed = work(
        deliver(client, "pull_request", pull_request("closed", sha=PUSH_SHA), delivery="d-2")
    )
    _died_after_its_work(closed)
    assert work_again(closed).events == closed.events
    assert Event.objects.filter(start_from="~pr-closed").count() == 1


def test_a_push_whose_worker_died_after_moving_the_head_still_starts_its_event(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    a, _ = pipelines
    response = deliver(client, "push", push(), delivery="d-1")
    delivery = WebhookDelivery.objects.get(delivery_id=response.json()["deliveryId"])
    # The dead worker had moved the head, and died before the event was made.
    Pipeline.objects.filter(pk=a.pk).update(last_seen_sha=PUSH_SHA)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        processed_at=timezone.now() - CLAIM_LEASE - timedelta(seconds=1), attempts=1
    )

    done = work_again(delivery)

    event = Event.objects.get()
    assert (event.pipeline, event.sha, done.events) == (a, PUSH_SHA, [event.pk])
    # Another notice of the same sha (its own body, or it is a replay) starts nothing more.
    again = deliver(client, "push", {**push(), "pusher": {"name": "other"}}, delivery="d-2")
    assert work(again).events == []


def test_a_claimed_delivery_is_left_to_its_live_worker(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    response = deliver(client, "push", push(), delivery="d-1")
    delivery = WebhookDelivery.objects.get(delivery_id=response.json()["deliveryId"])
    WebhookDelivery.objects.filter(pk=delivery.pk).update(processed_at=timezone.now())

    assert work_again(delivery).outcome == WebhookDelivery.Outcome.QUEUED
    assert not Event.objects.exists()


def work_again(delivery: WebhookDelivery) -> WebhookDelivery:
    process_delivery(delivery.pk)
    delivery.refresh_from_db()
    return delivery
