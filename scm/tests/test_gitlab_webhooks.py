"""POST /v4/webhooks for GitLab: GitLab-shaped samples, token check, idempotency, the mapping."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from django.test import Client

from builds.models import Build, BuildStatus
from pipelines.models import Event, Job, Pipeline
from pipelines.services import create_pipeline
from scm.models import WebhookDelivery
from scm.signing import gitlab_hook_token
from scm.tasks import process_delivery
from scm.tests.scm_people import repository_admin

pytestmark = pytest.mark.django_db

SAMPLES = Path(__file__).resolve().parent / "gitlab_samples"
GITLAB = "https://gitlab.example.com"
API = f"{GITLAB}/api/v4"
TOKEN = "gitlab-hook-token"
HEAD_SHA = "a" * 40
TAG_SHA = "b" * 40
PUSH_SHA = "c" * 40
MR_SHA = "f" * 40
MR_SHA_2 = "1" * 40
REPO = "acme/platform/diaspora"
OTHER = "acme/other"

CONFIG = b"""
jobs:
  main:
    image: node:20
    requires: [~commit]
    steps:
      - build: echo main
  docs:
    image: node:20
    requires: [~commit]
    sourcePaths: [docs/]
    steps:
      - build: echo docs
  feature:
    image: node:20
    requires: [~commit:/^feature-/]
    steps:
      - build: echo feature
  tagged:
    image: node:20
    requires: [~tag]
    steps:
      - build: echo tag
  released:
    image: node:20
    requires: [~release]
    steps:
      - build: echo release
  test:
    image: node:20
    requires: [~pr]
    steps:
      - build: echo test
  cleanup:
    image: node:20
    requires: [~pr-closed]
    steps:
      - build: echo cleanup
"""
# What the merge request's own commits carry: its PR jobs come from here, not from master.
MR_CONFIG = CONFIG.replace(b"  test:\n", b"  lint:\n")

HOOKS = {
    "push": "Push Hook",
    "tag_push": "Tag Push Hook",
    "release": "Release Hook",
    "merge_request": "Merge Request Hook",
}


def sample(name: str) -> bytes:
    return (SAMPLES / f"{name}.json").read_bytes()


def hook_of(name: str) -> str:
    """Return the X-Gitlab-Event GitLab sends with a sample, from the sample's file name."""
    return next(
        hook for prefix, hook in sorted(HOOKS.items(), reverse=True) if name.startswith(prefix)
    )


PROJECTS_TOKEN = object()  # deliver()'s default: the token of the project the body names


def token_for(body: bytes) -> str:
    """The token GitLab's hook of the project the body names carries."""
    try:
        project = json.loads(body).get("project")
    except (ValueError, AttributeError):
        return gitlab_hook_token(REPO)
    path = project.get("path_with_namespace") if isinstance(project, dict) else None
    return gitlab_hook_token(str(path or REPO))


def deliver(
    client: Client,
    name: str,
    *,
    delivery: str,
    token: str | object | None = PROJECTS_TOKEN,
    body: bytes | None = None,
    uuid_header: str = "Idempotency-Key",
) -> Any:
    """POST a sample to /v4/webhooks the way GitLab does, with the token header unless None."""
    data = sample(name) if body is None else body
    headers = {"X-Gitlab-Event": hook_of(name), uuid_header: delivery}
    if token is PROJECTS_TOKEN:
        headers["X-Gitlab-Token"] = token_for(data)
    elif isinstance(token, str):
        headers["X-Gitlab-Token"] = token
    return client.post("/v4/webhooks", data=data, content_type="application/json", headers=headers)


def work(response: Any) -> WebhookDelivery:
    """Run the worker's task for an accepted delivery, as django-q2 would."""
    assert response.status_code == 202, response.content
    delivery = WebhookDelivery.objects.get(scm="gitlab", delivery_id=response.json()["deliveryId"])
    process_delivery(delivery.pk)
    delivery.refresh_from_db()
    return delivery


def fake_gitlab(router: respx.Router, project: str) -> None:
    """Answer the calls GitLabScm makes about one project."""
    base = re.escape(f"{API}/projects/{project.replace('/', '%2F')}")
    # Whoever asks maintains a public project (scm_people.repository_admin).
    router.get(url__regex=base + "$").mock(
        return_value=httpx.Response(
            200,
            json={
                "path_with_namespace": project,
                "visibility": "public",
                "default_branch": "master",
                "permissions": {"project_access": {"access_level": 40}},
            },
        )
    )
    router.get(url__regex=base + r"/repository/commits/master$").mock(
        return_value=httpx.Response(200, json={"id": HEAD_SHA})
    )
    router.get(url__regex=base + r"/repository/commits/[0-9a-f]{40}$").mock(
        side_effect=lambda request: httpx.Response(
            200,
            json={
                "id": request.url.path.rsplit("/", 1)[1],
                "message": "fixed readme\n",
                "author_name": "Jordi Mallach",
                "author_email": "jordi@softcatala.org",
                "authored_date": "2026-11-20T09:15:02.000+01:00",
                "web_url": f"{GITLAB}/{project}/-/commit/x",
            },
        )
    )

    def config_at(request: httpx.Request) -> httpx.Response:
        sha = request.url.params["ref"]
        return httpx.Response(200, content=MR_CONFIG if sha in (MR_SHA, MR_SHA_2) else CONFIG)

    router.get(url__regex=base + r"/repository/files/screwdriver\.yaml/raw\?ref=").mock(
        side_effect=config_at
    )
    router.get(url__regex=base + r"/hooks\?").mock(return_value=httpx.Response(200, json=[]))
    router.post(url__regex=base + r"/hooks$").mock(return_value=httpx.Response(201, json={"id": 1}))
    # A merge request that changes no file unless a test says otherwise.
    router.get(url__regex=base + r"/merge_requests/\d+/diffs", name=f"mr-diffs:{project}").mock(
        return_value=httpx.Response(200, json=[])
    )


@pytest.fixture(autouse=True)
def gitlab(settings: Any) -> Iterator[respx.Router]:
    """A self-managed GitLab's settings, and its API answered at the HTTP boundary."""
    settings.SD_GITLAB_URL = GITLAB
    settings.SD_GITLAB_WEBHOOK_TOKEN = TOKEN
    settings.SD_GITLAB_TOKEN = "server-token"
    settings.SD_GITHUB_WEBHOOK_SECRET = ""
    with respx.mock(assert_all_called=False) as router:
        fake_gitlab(router, REPO)
        fake_gitlab(router, OTHER)
        yield router


@pytest.fixture
def pipelines() -> tuple[Pipeline, Pipeline]:
    """Pipeline A on acme/platform/diaspora#master, pipeline B on another project."""
    user = repository_admin("jsmith", "gitlab")
    a = create_pipeline(checkout_url=f"{GITLAB}/{REPO}.git#master", user=user)
    b = create_pipeline(checkout_url=f"git@gitlab.example.com:{OTHER}.git#master", user=user)
    return a, b


def jobs_of(event: Event) -> list[str]:
    return [build.job.name for build in event.builds.order_by("pk")]


# --- pushes, tags, releases -----------------------------------------------------------------


def test_a_push_to_the_pipeline_branch_runs_commit_jobs_at_the_checkout_sha(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    a, _ = pipelines
    delivery = work(deliver(client, "push", delivery="d-1"))
    event = Event.objects.get()
    assert (event.pipeline, event.sha, event.start_from) == (a, PUSH_SHA, "~commit")
    assert jobs_of(event) == ["main"]
    assert delivery.outcome == WebhookDelivery.Outcome.DONE and delivery.events == [event.pk]
    assert (delivery.scm, delivery.repository) == ("gitlab", REPO)


def test_a_push_runs_the_jobs_whose_source_paths_its_commits_touch(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    work(deliver(client, "push", delivery="d-1"))
    event = Event.objects.get()
    # push.json changes po/ca.po and README.md: nothing under docs/.
    assert jobs_of(event) == ["main"]
    assert event.meta["commit"]["changedFiles"] == "README.md,po/ca.po"


def test_a_push_starts_a_folders_pipeline_only_when_it_changes_a_file_in_the_folder(
    client: Client, gitlab: respx.Router
) -> None:
    project = re.escape(f"{API}/projects/{REPO.replace('/', '%2F')}")
    gitlab.get(url__regex=project + r"/repository/files/(docs|po)%2Fscrewdriver\.yaml/raw\?").mock(
        return_value=httpx.Response(200, content=CONFIG)
    )
    user = repository_admin("jsmith", "gitlab")
    docs = create_pipeline(checkout_url=f"{GITLAB}/{REPO}.git#master:docs", user=user)
    po = create_pipeline(checkout_url=f"{GITLAB}/{REPO}.git#master:po", user=user)
    assert (docs.root_dir, po.root_dir) == ("docs", "po")

    delivery = work(deliver(client, "push", delivery="d-1"))

    # push.json changes po/ca.po and README.md: po/ has a change, docs/ none.
    event = Event.objects.get()
    assert (event.pipeline, jobs_of(event)) == (po, ["main"])
    assert delivery.events == [event.pk]


def test_a_push_with_more_commits_than_gitlab_lists_runs_every_job(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    # GitLab lists 20 commits at most: the files the others changed are unknown.
    payload = json.loads(sample("push"))
    payload["total_commits_count"] = 25
    work(deliver(client, "push", delivery="d-1", body=json.dumps(payload).encode()))
    assert sorted(jobs_of(Event.objects.get())) == ["docs", "main"]


def test_a_push_to_another_branch_runs_only_the_jobs_that_ask_for_it(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    work(deliver(client, "push_feature_branch", delivery="d-1"))
    assert work(deliver(client, "push_other_branch", delivery="d-2")).events == []
    event = Event.objects.get()
    assert (event.start_from, event.sha) == ("~commit:feature-x", PUSH_SHA)
    assert jobs_of(event) == ["feature"]


def test_a_push_whose_head_commit_says_ci_skip_starts_nothing(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    delivery = work(deliver(client, "push_skip_ci", delivery="d-1"))
    assert delivery.outcome == WebhookDelivery.Outcome.DONE and delivery.events == []
    assert not Event.objects.exists()


def test_a_deleted_branch_starts_nothing(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    assert work(deliver(client, "push_branch_deleted", delivery="d-1")).events == []
    assert not Event.objects.exists()


def test_a_tag_push_runs_tag_jobs_at_the_tagged_commit_not_the_tag_object(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    work(deliver(client, "tag_push", delivery="d-1"))
    event = Event.objects.get()
    assert (event.pipeline, event.sha, event.start_from) == (pipelines[0], TAG_SHA, "~tag")
    assert jobs_of(event) == ["tagged"]


def test_a_deleted_tag_starts_nothing(client: Client, pipelines: tuple[Pipeline, Pipeline]) -> None:
    assert work(deliver(client, "tag_push_deleted", delivery="d-1")).events == []
    assert not Event.objects.exists()


def test_a_created_release_runs_release_jobs(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    work(deliver(client, "release_create", delivery="d-1"))
    event = Event.objects.get()
    assert (event.sha, event.start_from) == (TAG_SHA, "~release")
    assert jobs_of(event) == ["released"]


def test_unsupported_hooks_are_answered_and_ignored(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    for n, hook in enumerate(["Note Hook", "Pipeline Hook", "Issue Hook"]):
        kind = hook.split()[0].lower()
        body = json.dumps({"object_kind": kind, "project": {"path_with_namespace": REPO}}).encode()
        response = client.post(
            "/v4/webhooks",
            data=body,
            content_type="application/json",
            headers={
                "X-Gitlab-Event": hook,
                "X-Gitlab-Token": gitlab_hook_token(REPO),
                "Idempotency-Key": f"{n}",
            },
        )
        assert response.status_code == 200 and response.json()["outcome"] == "ignored"
    assert not Event.objects.exists()


# --- merge requests -------------------------------------------------------------------------


def test_an_opened_merge_request_runs_pr_jobs_from_its_own_screwdriver_yaml(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    work(deliver(client, "merge_request_open", delivery="d-1"))
    event = Event.objects.get()
    assert (event.type, event.pr_num, event.sha) == ("pr", 7, MR_SHA)
    assert jobs_of(event) == ["PR-7:lint"]
    assert event.pr["fork"] is True
    assert event.pr["url"] == f"{GITLAB}/{REPO}/-/merge_requests/7"


def test_a_reopened_merge_request_runs_its_pr_jobs_again_as_a_branch_pr(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    work(deliver(client, "merge_request_reopen", delivery="d-1"))
    event = Event.objects.get()
    assert (event.type, event.pr_num, event.pr["fork"]) == ("pr", 7, False)
    assert jobs_of(event) == ["PR-7:lint"]


def test_new_commits_on_a_merge_request_abort_its_previous_builds_and_run_the_new_sha(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    work(deliver(client, "merge_request_open", delivery="d-1"))
    first = Build.objects.get()
    work(deliver(client, "merge_request_update_commits", delivery="d-2"))
    first.refresh_from_db()
    assert first.status == BuildStatus.ABORTED
    latest = Event.objects.latest("pk")
    assert (latest.sha, latest.pr_num, latest.type) == (MR_SHA_2, 7, "pr")
    assert latest.builds.get().status != BuildStatus.ABORTED


def test_a_title_change_or_approval_of_a_merge_request_is_ignored(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    work(deliver(client, "merge_request_open", delivery="d-1"))
    for n, name in enumerate(["merge_request_update_title", "merge_request_approved"]):
        response = deliver(client, name, delivery=f"d-{n + 2}")
        assert response.status_code == 200 and response.json()["outcome"] == "ignored"
    assert Event.objects.count() == 1
    assert Build.objects.get().status != BuildStatus.ABORTED


@pytest.mark.parametrize("name", ["merge_request_close", "merge_request_merge"])
def test_closing_or_merging_a_merge_request_aborts_archives_and_runs_pr_closed(
    client: Client, pipelines: tuple[Pipeline, Pipeline], name: str
) -> None:
    work(deliver(client, "merge_request_open", delivery="d-1"))
    work(deliver(client, name, delivery="d-2"))
    assert Build.objects.get(job__name="PR-7:lint").status == BuildStatus.ABORTED
    assert Job.objects.get(name="PR-7:lint").archived
    closed = Event.objects.latest("pk")
    assert (closed.type, closed.start_from) == ("pipeline", "~pr-closed")
    assert jobs_of(closed) == ["cleanup"]


def test_a_fork_merge_request_builds_nothing_where_forks_are_restricted_and_says_why(
    client: Client, settings: Any, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    settings.SD_RESTRICT_PR = "fork-admin"
    delivery = work(deliver(client, "merge_request_open", delivery="d-1"))
    assert delivery.events == [] and not Event.objects.exists()
    assert "does not build pull requests from a fork" in delivery.message
    # A merge request from a branch of the project itself still builds.
    assert len(work(deliver(client, "merge_request_reopen", delivery="d-2")).events) == 1


def test_a_merge_request_into_another_branch_runs_nothing_here(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    assert work(deliver(client, "merge_request_open_other_target", delivery="d-1")).events == []
    assert not Event.objects.exists()


# --- what is refused, and changes nothing ----------------------------------------------------


def nothing_changed() -> bool:
    return not WebhookDelivery.objects.exists() and not Event.objects.exists()


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("forged-token", "forged"),
        (None, "missing"),
        ("", "empty"),
        (gitlab_hook_token(REPO) + "x", "longer"),
        # The server-wide secret itself is no project's token: nobody pastes it into a hook.
        (TOKEN, "the server secret"),
    ],
)
def test_a_forged_or_missing_token_is_refused(
    client: Client, pipelines: tuple[Pipeline, Pipeline], token: str | None, reason: str
) -> None:
    response = deliver(client, "push", delivery="d-1", token=token)
    assert response.status_code == 401, reason
    assert "X-Gitlab-Token" in response.content.decode()
    assert "SD_GITLAB_WEBHOOK_TOKEN" not in response.content.decode()
    assert nothing_changed()


def test_a_token_for_one_project_is_refused_for_a_delivery_naming_another(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    # A maintainer of acme/other knows its hook's token; it must not run diaspora's pipeline.
    response = deliver(client, "push", delivery="d-1", token=gitlab_hook_token(OTHER))
    assert response.status_code == 401
    assert nothing_changed()


def test_each_project_hook_token_differs_and_derives_from_the_server_secret(
    settings: Any,
) -> None:
    mine, theirs = gitlab_hook_token(REPO), gitlab_hook_token(OTHER)
    assert mine != theirs and len(mine) == 64 and TOKEN not in mine
    settings.SD_GITLAB_WEBHOOK_TOKEN = "rotated"
    assert gitlab_hook_token(REPO) != mine


def test_every_gitlab_delivery_is_refused_while_no_token_is_configured(
    client: Client, settings: Any, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    settings.SD_GITLAB_WEBHOOK_TOKEN = ""
    assert deliver(client, "push", delivery="d-1", token="").status_code == 403
    assert deliver(client, "push", delivery="d-2").status_code == 403
    assert nothing_changed()


def test_a_replayed_delivery_is_refused_and_starts_nothing_more(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    work(deliver(client, "push_feature_branch", delivery="d-1"))
    again = deliver(client, "push_feature_branch", delivery="d-1")
    assert again.status_code == 409
    assert WebhookDelivery.objects.count() == 1 and Event.objects.count() == 1


def test_a_replayed_body_under_a_new_delivery_id_changes_nothing(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    work(deliver(client, "release_create", delivery="d-1"))

    replay = deliver(client, "release_create", delivery="d-2")

    assert replay.status_code == 409, replay.content
    assert "repeats the body" in replay.json()["message"]
    assert WebhookDelivery.objects.count() == 1 and Event.objects.count() == 1


def test_the_event_uuid_header_identifies_deliveries_of_gitlab_before_idempotency_keys(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    first = deliver(client, "push", delivery="u-1", uuid_header="X-Gitlab-Event-UUID")
    assert first.status_code == 202
    again = deliver(client, "push", delivery="u-1", uuid_header="X-Gitlab-Event-UUID")
    assert again.status_code == 409
    none = client.post(
        "/v4/webhooks",
        data=sample("push"),
        content_type="application/json",
        headers={"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": gitlab_hook_token(REPO)},
    )
    assert none.status_code == 400
    assert WebhookDelivery.objects.count() == 1


def test_a_github_delivery_id_does_not_collide_with_a_gitlab_one(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    WebhookDelivery.objects.create(scm="github", delivery_id="same", event_name="push")
    assert deliver(client, "push", delivery="same").status_code == 202


def test_a_task_run_twice_acts_once(client: Client, pipelines: tuple[Pipeline, Pipeline]) -> None:
    delivery = work(deliver(client, "push_feature_branch", delivery="d-1"))
    process_delivery(delivery.pk)
    assert Event.objects.count() == 1


def test_a_delivery_for_one_project_never_triggers_another(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    _, b = pipelines
    work(deliver(client, "push_cross_project", delivery="d-1"))
    assert list(Event.objects.values_list("pipeline", flat=True)) == [b.pk]
    # A project whose path merely starts like pipeline A's is another project.
    lookalike = json.loads(sample("push"))
    lookalike["project"]["path_with_namespace"] = REPO + "2"
    response = deliver(client, "push", delivery="d-2", body=json.dumps(lookalike).encode())
    assert work(response).events == []
    assert Event.objects.count() == 1


def test_an_oversized_delivery_is_refused_before_it_is_read(
    client: Client, settings: Any, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    settings.SD_WEBHOOK_MAX_BYTES = 1024
    assert len(sample("push")) > 1024
    assert deliver(client, "push", delivery="d-1").status_code == 413
    assert nothing_changed()


def test_a_body_that_is_not_a_json_object_is_a_bad_request(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    for n, body in enumerate([b"not json", b"[1, 2]"]):
        assert deliver(client, "push", delivery=f"d-{n}", body=body).status_code == 400
    assert nothing_changed()


def test_fields_of_an_unexpected_shape_are_answered_and_start_nothing(
    client: Client, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    odd_mr = json.dumps(
        {
            "object_kind": "merge_request",
            "object_attributes": "x",
            "project": {"path_with_namespace": REPO},
        }
    ).encode()
    response = deliver(client, "merge_request_open", delivery="d-1", body=odd_mr)
    assert response.status_code == 200 and response.json()["outcome"] == "ignored"
    odd_push = json.loads(sample("push"))
    odd_push["commits"] = "x"
    delivery = work(deliver(client, "push", delivery="d-2", body=json.dumps(odd_push).encode()))
    assert delivery.outcome == WebhookDelivery.Outcome.DONE
    # A project of another shape names no project, so no hook token can be checked for it.
    odd_project = json.loads(sample("push"))
    odd_project["project"] = ["acme"]
    body = json.dumps(odd_project).encode()
    refused = deliver(client, "push", delivery="d-3", body=body, token=gitlab_hook_token(REPO))
    assert refused.status_code == 401


def test_a_gitlab_token_is_no_github_signature(
    client: Client, settings: Any, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    settings.SD_GITHUB_WEBHOOK_SECRET = TOKEN
    response = client.post(
        "/v4/webhooks",
        data=sample("push"),
        content_type="application/json",
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "d-1",
            "X-Gitlab-Token": gitlab_hook_token(REPO),
        },
    )
    assert response.status_code == 401
    assert nothing_changed()


# --- the hook itself --------------------------------------------------------------------------


def test_creating_a_gitlab_pipeline_registers_each_project_hook_with_its_own_token(
    gitlab: respx.Router, pipelines: tuple[Pipeline, Pipeline]
) -> None:
    calls = [c for c in gitlab.calls if c.request.method == "POST"]
    assert [c.request.url.raw_path for c in calls] == [
        b"/api/v4/projects/acme%2Fplatform%2Fdiaspora/hooks",
        b"/api/v4/projects/acme%2Fother/hooks",
    ]
    hook = json.loads(calls[0].request.content)
    assert hook["token"] == gitlab_hook_token(REPO) and hook["url"].endswith("/v4/webhooks")
    assert json.loads(calls[1].request.content)["token"] == gitlab_hook_token(OTHER)
    assert hook["push_events"] and hook["tag_push_events"] and hook["merge_requests_events"]
    assert all(c.request.headers["Authorization"] == "Bearer server-token" for c in calls)
    assert all(p.hook_installed for p in pipelines)
    assert pipelines[0].scm_context == "gitlab:gitlab.example.com"
