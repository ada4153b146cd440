"""A GitHub delivery whose worker is killed mid-way: processed later, its event made once;
a private GitHub repository, which builds with the server's token, or with a GitHub App's
installation token issued for the build, and shows it nowhere; and a pull request whose
build's summary reaches the pull request and the Pull Requests tab."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from acceptance.stack import Stack, finished, first_build, git, log_lines, new_stack, wait_for
from scm.tests.github_server import FakeGitHub, serve_github

pytestmark = pytest.mark.xdist_group("webhooks")

SECRET = "acceptance-webhook-secret"
TOKEN = "ghs_acceptanceServerToken5b1e0c7d9a"
APP_ID = "31337"
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


def _deliver(stack: Stack, delivery: str, body: bytes, event: str = "push") -> httpx.Response:
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return httpx.post(
        f"{stack.url}/v4/webhooks",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
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


PR_YAML = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - hello: echo hello
  test:
    image: buildpack-deps
    requires: [~pr]
    steps:
      - report: |
          meta set summary "Coverage is <81%>"
          meta set tests.coverage 81
          meta set tests.results 10/12
"""


def test_a_pull_requests_summary_is_commented_and_shown_on_the_pull_requests_tab(
    github_stack: Stack,
    github: tuple[str, FakeGitHub],
    repo: Callable[..., tuple[Path, Path]],
) -> None:
    stack = github_stack
    _, fake = github
    bare, work = repo(PR_YAML, name="prs")
    fake.repos["octo-org/prs"] = bare
    subprocess.run(["git", "update-server-info"], cwd=bare, check=True)
    api = stack.api()
    created = api.post(
        "/pipelines", json={"checkoutUrl": "https://127.0.0.1/octo-org/prs.git#main"}
    )
    assert created.status_code == 201, created.text
    pipeline_id = created.json()["id"]

    (work / "feature.txt").write_text("more tests\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "more tests", cwd=work)
    git("push", "--quiet", "origin", "HEAD:refs/pull/5/head", cwd=work)
    subprocess.run(["git", "update-server-info"], cwd=bare, check=True)
    sha = git("rev-parse", "HEAD", cwd=work)
    payload = {
        "action": "opened",
        "number": 5,
        "pull_request": {
            "number": 5,
            "title": "Add <more> tests",
            "html_url": "https://127.0.0.1/octo-org/prs/pull/5",
            "head": {"sha": sha, "ref": "feature", "repo": {"full_name": "octo-org/prs"}},
            "base": {"ref": "main", "repo": {"full_name": "octo-org/prs"}},
        },
        "repository": {"full_name": "octo-org/prs", "default_branch": "main"},
        "sender": {"login": "octocat"},
    }
    answer = _deliver(stack, "pr-5-opened", json.dumps(payload).encode(), "pull_request")
    assert answer.status_code == 202, answer.text

    def pr_event() -> dict[str, object] | None:
        events = api.get(f"/pipelines/{pipeline_id}/events").json()
        return next((e for e in events if e.get("prNum") == 5), None)

    event = wait_for(pr_event, timeout=120, what="the pull request's event")
    build_id = first_build(stack, event)["id"]
    done = finished(stack, build_id, timeout=180)
    assert done["status"] == "SUCCESS", log_lines(stack, build_id, "report")

    def commented() -> str | None:
        with fake.lock:
            return next((b for n, b in fake.comments.values() if n == 5), None)

    comment = wait_for(commented, timeout=120, what="the summary comment")
    assert f"[#{build_id}]" in comment and "Coverage is <81%>" in comment

    # The tab, as a person signed in to the UI reads it.
    password = (stack.data_dir / "admin-password").read_text().strip()
    with httpx.Client(base_url=stack.url, timeout=30) as browser:
        form = browser.get("/login/").text
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
        assert csrf is not None
        signed_in = browser.post(
            "/login/",
            data={"username": "admin", "password": password, "csrfmiddlewaretoken": csrf[1]},
        )
        assert signed_in.status_code == 302, signed_in.text[:500]
        tab = browser.get(f"/pipelines/{pipeline_id}/pulls")
    assert tab.status_code == 200
    assert "Add &lt;more&gt; tests" in tab.text and "by octocat" in tab.text
    assert f"/pipelines/{pipeline_id}/builds/{build_id}" in tab.text
    assert "Coverage is &lt;81%&gt;" in tab.text and "81%</a>" not in tab.text
    assert ">81%<" in tab.text and ">10/12<" in tab.text


@pytest.fixture(scope="module")
def github_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, FakeGitHub]]:
    """A stack that is a GitHub App of a GitHub whose git takes only the app's tokens."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path_factory.mktemp("app") / "app.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    pem.chmod(0o600)
    with serve_github() as (base_url, fake):
        fake.credential = ("x-access-token", TOKEN)
        fake.credential_clones = False
        fake.app_id = APP_ID
        fake.app_public_key = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        stack = new_stack(
            "github-app",
            SD_GITHUB_API_URL=f"{base_url}/api/v3",
            SD_GITHUB_TOKEN=TOKEN,
            SD_GITHUB_APP_ID=APP_ID,
            SD_GITHUB_APP_PRIVATE_KEY_FILE=str(pem),
            SD_DEMO="false",
        )
        yield stack, fake
        stack.kill()


def test_a_github_app_build_clones_with_a_token_of_its_own_that_shows_nowhere(
    github_app: tuple[Stack, FakeGitHub],
    repo: Callable[..., tuple[Path, Path]],
) -> None:
    stack, fake = github_app
    bare, _work = repo(YAML, "secret")
    fake.repos["octo-org/secret"] = bare
    fake.private.add("octo-org/secret")
    fake.installations["octo-org/secret"] = 11

    api = stack.api()
    created = api.post(
        "/pipelines", json={"checkoutUrl": "https://127.0.0.1/octo-org/secret.git#main"}
    )
    assert created.status_code == 201, created.text
    event = api.post("/events", json={"pipelineId": created.json()["id"], "startFrom": "main"})
    assert event.status_code == 201, event.text
    build_id = first_build(stack, event.json())["id"]
    done = finished(stack, build_id, timeout=120)
    assert done["status"] == "SUCCESS", log_lines(stack, build_id, "sd-setup-scm")
    # The server's token no longer clones here: the app's token for this repository did.
    (issued,) = fake.issued
    assert fake.refused and "x-access-token" in fake.git_callers
    assert fake.app_requests[-1] == (
        "POST /app/installations/11/access_tokens",
        {"repositories": ["secret"], "permissions": {"contents": "read"}},
    )
    shown = [
        api.get(path).text for path in (f"/builds/{build_id}", f"/events/{event.json()['id']}")
    ]
    shown += [" ".join(log_lines(stack, build_id, s)) for s in ("sd-setup-scm", "hello")]
    assert not [text for text in shown if issued in text or TOKEN in text]

    # Without the app on the repository, the build fails and says why.
    fake.installations.clear()
    again = api.post("/events", json={"pipelineId": created.json()["id"], "startFrom": "main"})
    failed = finished(stack, first_build(stack, again.json())["id"], timeout=120)
    assert failed["status"] == "FAILURE"
    assert failed["statusMessage"].startswith(f"The GitHub App {APP_ID} is not installed on")
