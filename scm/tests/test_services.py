"""Noticing pushes: the signed local webhook and the poller, on real git repositories."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from builds.models import Build, BuildStatus
from conftest import GitRepo, run_git
from pipelines.models import Event, Pipeline
from pipelines.services import create_pipeline
from scm.api.views import MAX_BODY_BYTES
from scm.services import poll_all
from scm.signing import SIGNATURE_HEADER, repository_key, sign

pytestmark = pytest.mark.django_db

MakeRepo = Callable[..., GitRepo]
URL = "/v4/webhooks/local"

CONFIG = """
shared:
  image: node:18
jobs:
  main:
    requires: [~commit]
    steps:
      - test: echo test
"""


@pytest.fixture(autouse=True)
def _no_hook_delivery(settings: Any) -> None:
    # The installed hook posts to SD_API_URL on every push; a closed port makes it give up at
    # once, so each test decides itself what the server hears.
    settings.SD_API_URL = "http://127.0.0.1:9"


@pytest.fixture
def repo(make_repo: MakeRepo) -> GitRepo:
    return make_repo({"screwdriver.yaml": CONFIG})


@pytest.fixture
def pipeline(owner: User, repo: GitRepo) -> Pipeline:
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=owner)
    assert pipeline.hook_installed
    return pipeline


def repo_path(repo: GitRepo) -> str:
    return os.path.realpath(repo.bare)


def body_for(repo: GitRepo, sha: str, branch: str = "main", **extra: Any) -> bytes:
    refs = [{"before": "0" * 40, "after": sha, "ref": f"refs/heads/{branch}"}]
    return json.dumps({"repository": repo_path(repo), "refs": refs, **extra}).encode()


def deliver(body: bytes, signature: str | None) -> Any:
    headers = {} if signature is None else {SIGNATURE_HEADER: signature}
    return APIClient().post(URL, body, content_type="application/json", headers=headers)


def deliver_signed(repo: GitRepo, body: bytes) -> Any:
    return deliver(body, sign(body, repository_key(repo_path(repo))))


def commit_events(pipeline: Pipeline) -> list[Event]:
    return list(Event.objects.filter(pipeline=pipeline, start_from="~commit").order_by("id"))


def last_seen(pipeline: Pipeline) -> str:
    return Pipeline.objects.values_list("last_seen_sha", flat=True).get(pk=pipeline.pk)


# --- the signed webhook ---------------------------------------------------------------------


def test_a_signed_push_starts_one_commit_event(repo: GitRepo, pipeline: Pipeline) -> None:
    sha = repo.push({"README.md": "v2"}, "second commit")

    response = deliver_signed(repo, body_for(repo, sha))

    assert response.status_code == 202, response.content
    events = commit_events(pipeline)
    assert response.json() == {"events": [e.pk for e in events]}
    assert len(events) == 1
    event = events[0]
    assert event.sha == sha
    assert event.commit["message"] == "second commit"
    assert event.cause_message == f"Commit {sha[:7]} pushed to main"
    assert [(b.job.name, b.status) for b in Build.objects.filter(event=event)] == [
        ("main", BuildStatus.QUEUED)
    ]
    assert last_seen(pipeline) == sha


def test_the_same_delivery_twice_makes_one_event(repo: GitRepo, pipeline: Pipeline) -> None:
    sha = repo.push({"README.md": "v2"})
    body = body_for(repo, sha)

    first = deliver_signed(repo, body)
    again = deliver_signed(repo, body)

    assert first.status_code == 202
    assert again.status_code == 200 and again.json() == {"events": []}
    assert len(commit_events(pipeline)) == 1


def test_a_push_of_the_head_the_pipeline_was_created_at_starts_nothing(
    repo: GitRepo, pipeline: Pipeline
) -> None:
    head = repo.pushes[-1]

    response = deliver_signed(repo, body_for(repo, head))

    assert response.status_code == 200
    assert commit_events(pipeline) == []


def test_each_new_push_starts_its_own_event(repo: GitRepo, pipeline: Pipeline) -> None:
    first = repo.push({"a": "1"})
    deliver_signed(repo, body_for(repo, first))
    second = repo.push({"a": "2"})
    deliver_signed(repo, body_for(repo, second))

    assert [e.sha for e in commit_events(pipeline)] == [first, second]


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=" + "0" * 64,
        "sha1=" + "0" * 40,
        "sha256=nothex",
    ],
    ids=["missing", "empty", "forged", "sha1", "malformed"],
)
def test_a_delivery_without_a_good_signature_is_refused_and_changes_nothing(
    repo: GitRepo, pipeline: Pipeline, signature: str | None
) -> None:
    before = last_seen(pipeline)
    sha = repo.push({"README.md": "v2"})

    response = deliver(body_for(repo, sha), signature)

    assert 400 <= response.status_code < 500
    assert response.json()["statusCode"] == response.status_code
    assert commit_events(pipeline) == []
    assert last_seen(pipeline) == before


def test_a_delivery_signed_with_another_repositorys_key_is_refused(
    owner: User, make_repo: MakeRepo, repo: GitRepo, pipeline: Pipeline
) -> None:
    other = make_repo({"screwdriver.yaml": CONFIG}, "other")
    create_pipeline(checkout_url=other.checkout_url, user=owner)
    sha = repo.push({"README.md": "v2"})
    body = body_for(repo, sha)

    response = deliver(body, sign(body, repository_key(repo_path(other))))

    assert 400 <= response.status_code < 500
    assert Event.objects.count() == 0


def test_a_body_changed_after_signing_is_refused(repo: GitRepo, pipeline: Pipeline) -> None:
    sha = repo.push({"README.md": "v2"})
    signature = sign(body_for(repo, sha), repository_key(repo_path(repo)))

    response = deliver(body_for(repo, sha, pusher="mallory"), signature)

    assert 400 <= response.status_code < 500
    assert commit_events(pipeline) == []


def test_an_oversized_body_is_refused_even_when_signed(repo: GitRepo, pipeline: Pipeline) -> None:
    sha = repo.push({"README.md": "v2"})
    body = body_for(repo, sha, padding="x" * MAX_BODY_BYTES)
    assert len(body) > MAX_BODY_BYTES

    response = deliver_signed(repo, body)

    assert response.status_code == 413
    assert commit_events(pipeline) == []
    assert last_seen(pipeline) != sha


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"repository": 5, "refs": []}'])
def test_a_body_that_is_not_a_push_is_refused(
    repo: GitRepo, pipeline: Pipeline, body: bytes
) -> None:
    response = deliver_signed(repo, body)

    assert 400 <= response.status_code < 500
    assert Event.objects.count() == 0


def test_a_push_to_another_branch_starts_nothing(repo: GitRepo, pipeline: Pipeline) -> None:
    run_git("checkout", "-q", "-b", "feature", cwd=repo.work)
    sha = repo.commit({"feature.txt": "wip"}, "feature work")
    run_git("push", "-q", "origin", "HEAD:feature", cwd=repo.work)

    response = deliver_signed(repo, body_for(repo, sha, branch="feature"))

    assert response.status_code == 200 and response.json() == {"events": []}
    assert Event.objects.count() == 0
    assert last_seen(pipeline) != sha


def test_a_push_reaches_only_the_pipeline_of_its_branch(
    owner: User, repo: GitRepo, pipeline: Pipeline
) -> None:
    run_git("checkout", "-q", "-b", "release", cwd=repo.work)
    run_git("push", "-q", "origin", "HEAD:release", cwd=repo.work)
    release = create_pipeline(checkout_url=f"{repo.bare}#release", user=owner)
    sha = repo.commit({"CHANGELOG": "1.0"}, "release 1.0")
    run_git("push", "-q", "origin", "HEAD:release", cwd=repo.work)

    response = deliver_signed(repo, body_for(repo, sha, branch="release"))

    assert response.status_code == 202
    assert commit_events(pipeline) == []
    assert [e.sha for e in commit_events(release)] == [sha]


def test_a_replayed_delivery_of_an_older_push_starts_nothing(
    repo: GitRepo, pipeline: Pipeline
) -> None:
    old = repo.push({"a": "1"})
    old_body = body_for(repo, old)
    deliver_signed(repo, old_body)
    new = repo.push({"a": "2"})
    deliver_signed(repo, body_for(repo, new))

    replayed = deliver_signed(repo, old_body)
    poll_all()

    assert replayed.json() == {"events": []}
    assert [e.sha for e in commit_events(pipeline)] == [old, new]


def test_a_deleted_branch_starts_nothing(repo: GitRepo, pipeline: Pipeline) -> None:
    response = deliver_signed(repo, body_for(repo, "0" * 40))

    assert response.status_code == 200
    assert Event.objects.count() == 0


# --- polling --------------------------------------------------------------------------------


def foreign_hook(repo: GitRepo) -> None:
    hook = Path(repo.bare) / "hooks" / "post-receive"
    hook.write_text("#!/bin/sh\n# someone else's hook\nexit 0\n")
    hook.chmod(0o755)


def test_polling_starts_an_event_for_a_repository_without_our_hook_once(
    owner: User,
    make_repo: MakeRepo,
) -> None:
    repo = make_repo({"screwdriver.yaml": CONFIG}, "polled")
    foreign_hook(repo)
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=owner)
    assert not pipeline.hook_installed
    assert poll_all() == 0

    sha = repo.push({"README.md": "v2"}, "pushed while nobody listened")

    assert poll_all() == 1
    assert poll_all() == 0
    events = commit_events(pipeline)
    assert [e.sha for e in events] == [sha]
    assert Build.objects.filter(event=events[0]).count() == 1
    assert "someone else's hook" in (Path(repo.bare) / "hooks" / "post-receive").read_text()


def test_polling_after_the_hook_already_reported_a_push_starts_nothing(
    repo: GitRepo, pipeline: Pipeline
) -> None:
    sha = repo.push({"README.md": "v2"})
    assert deliver_signed(repo, body_for(repo, sha)).status_code == 202

    assert poll_all() == 0
    assert len(commit_events(pipeline)) == 1


def test_polling_skips_a_repository_that_disappeared(
    owner: User, make_repo: MakeRepo, repo: GitRepo, pipeline: Pipeline
) -> None:
    gone = make_repo({"screwdriver.yaml": CONFIG}, "gone")
    create_pipeline(checkout_url=gone.checkout_url, user=owner)
    run_git("update-ref", "-d", "refs/heads/main", cwd=gone.bare)
    sha = repo.push({"README.md": "v2"})

    assert poll_all() == 1
    assert [e.sha for e in commit_events(pipeline)] == [sha]
