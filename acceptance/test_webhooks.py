"""A GitHub delivery whose worker is killed mid-way: processed later, its event made once;
and a private GitHub repository, which builds with the server's token and shows it nowhere."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from acceptance.stack import Stack, finished, first_build, git, log_lines, new_stack, wait_for
from scm.tests.github_server import FakeGitHub, serve_github

pytestmark = pytest.mark.xdist_group("webhooks")

SECRET = "acceptance-webhook-secret"
TOKEN = "ghs_acceptanceServerToken5b1e0c7d9a"
YAML = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - hello: echo hello from GitHub
"""


@pytest.fixture(scope="module")
def github() -> Iterator[tuple[str, FakeGitHub]]:
    with serve_github() as served:
        yield served


@pytest.fixture(scope="module")
def github_stack(github: tuple[str, FakeGitHub]) -> Iterator[Stack]:
    base_url, _ = github
    stack = new_stack(
        "github",
        SD_GITHUB_API_URL=f"{base_url}/api/v3",
        SD_GITHUB_TOKEN=TOKEN,
        SD_GITHUB_WEBHOOK_SECRET=SECRET,
        SD_DEMO="false",
    )
    yield stack
    stack.kill()


def _deliver(stack: Stack, delivery: str, body: bytes) -> httpx.Response:
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return httpx.post(
        f"{stack.url}/v4/webhooks",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signature,
        },
        timeout=30,
    )


def test_a_delivery_whose_worker_was_killed_mid_way_starts_its_event_exactly_once(
    github_stack: Stack,
    github: tuple[str, FakeGitHub],
    repo: Callable[..., tuple[Path, Path]],
) -> None:
    stack = github_stack
    _, fake = github
    bare, work = repo(YAML, name="app")
    fake.repos["octo-org/app"] = bare
    subprocess.run(["git", "update-server-info"], cwd=bare, check=True)

    api = stack.api()
    created = api.post(
        "/pipelines", json={"checkoutUrl": "https://127.0.0.1/octo-org/app.git#main"}
    )
    assert created.status_code == 201, created.text
    pipeline_id = created.json()["id"]
    before = len(api.get(f"/pipelines/{pipeline_id}/events").json())

    (work / "notes.txt").write_text("a note\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "add notes", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    sha = git("rev-parse", "HEAD", cwd=work)
    payload = {
        "ref": "refs/heads/main",
        "after": sha,
        "commits": [{"added": ["notes.txt"], "modified": [], "removed": []}],
        "head_commit": {"message": "add notes"},
        "repository": {"full_name": "octo-org/app", "default_branch": "main"},
        "sender": {"login": "octocat"},
    }

    # GitHub is slow to answer the worker's read of the config; the worker dies meanwhile.
    worker = wait_for(stack.worker, timeout=60, what="the worker")
    fake.hold.set()
    held_before = fake.held
    answer = _deliver(stack, "killed-mid-way", json.dumps(payload).encode())
    assert answer.status_code == 202, answer.text
    try:
        wait_for(lambda: fake.held > held_before, timeout=60, what="the worker to ask GitHub")
        os.killpg(worker.pid, signal.SIGKILL)
    finally:
        fake.hold.clear()

    def events_for_sha() -> list[dict[str, object]]:
        events = api.get(f"/pipelines/{pipeline_id}/events").json()
        return [e for e in events if e["sha"] == sha]

    wait_for(events_for_sha, timeout=300, what="the delivery to be processed again")
    # Both ways back (the queue's own retry and the redelivery sweep) have had their turn
    # once no task is left waiting.
    check = (
        "from django_q.models import OrmQ; from scm.models import WebhookDelivery as D; "
        "d = D.objects.get(delivery_id='killed-mid-way'); "
        "print(OrmQ.objects.count(), d.outcome, d.events)"
    )
    settled = wait_for(
        lambda: (line := stack.shell(check)).startswith("0 done") and line,
        timeout=240,
        what="the queue to empty",
        every=5,
    )
    time.sleep(5)
    assert len(events_for_sha()) == 1, events_for_sha()
    assert len(api.get(f"/pipelines/{pipeline_id}/events").json()) == before + 1
    assert settled.endswith(f"[{events_for_sha()[0]['id']}]")


def test_a_private_repository_builds_with_the_servers_token_and_shows_it_nowhere(
    github_stack: Stack,
    github: tuple[str, FakeGitHub],
    repo: Callable[..., tuple[Path, Path]],
) -> None:
    stack = github_stack
    _, fake = github
    fake.credential = ("x-access-token", TOKEN)
    bare, _work = repo(YAML, "hidden")
    fake.repos["octo-org/hidden"] = bare
    fake.private.add("octo-org/hidden")

    api = stack.api()
    created = api.post(
        "/pipelines", json={"checkoutUrl": "https://127.0.0.1/octo-org/hidden.git#main"}
    )
    assert created.status_code == 201, created.text
    pipeline = created.json()
    assert pipeline["scmRepo"]["private"] is True
    event = api.post("/events", json={"pipelineId": pipeline["id"], "startFrom": "main"})
    assert event.status_code == 201, event.text
    build_id = first_build(stack, event.json())["id"]
    done = finished(stack, build_id, timeout=120)
    assert done["status"] == "SUCCESS", log_lines(stack, build_id, "sd-setup-scm")
    assert log_lines(stack, build_id, "hello") == ["hello from GitHub"]
    # GitHub refused the anonymous clone and let the server's token in.
    assert fake.refused and "x-access-token" in fake.git_callers
    shown = [
        api.get(path).text for path in (f"/builds/{build_id}", f"/events/{event.json()['id']}")
    ]
    shown += [" ".join(log_lines(stack, build_id, s)) for s in ("sd-setup-scm", "hello")]
    assert not [text for text in shown if TOKEN in text]
    # Only a build's own launcher may ask for it: a person's token is refused.
    assert api.post(f"/builds/{build_id}/checkout-credential").status_code == 403
