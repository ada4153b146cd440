"""A stand-in for GitHub's REST API at the HTTP boundary (respx), and signed deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

import httpx
import respx
from django.test import Client

API = "https://api.github.com"
SECRET = "webhook-secret"
HEAD_SHA = "a" * 40
TAG_SHA = "b" * 40
CONFIG = b"""
jobs:
  main:
    image: node:20
    requires: [~commit]
    steps:
      - build: echo main
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
    secrets: [TOKEN, PR_TOKEN]
    steps:
      - build: echo test
  cleanup:
    image: node:20
    requires: [~pr-closed]
    steps:
      - build: echo cleanup
"""


def fake_github(router: respx.Router, repos: tuple[str, ...], config: bytes = CONFIG) -> None:
    """Answer the calls GitHubScm makes for each repository full name in repos."""
    for full_name in repos:
        base = f"{API}/repos/{full_name}"
        # Whoever asks administers a public repository (scm_people.repository_admin).
        router.get(base, name=f"repo:{full_name}").mock(
            return_value=httpx.Response(
                200,
                json={
                    "full_name": full_name,
                    "private": False,
                    "default_branch": "master",
                    "permissions": {"admin": True, "push": True, "pull": True},
                },
            )
        )
        router.get(f"{base}/commits/heads/master").mock(
            return_value=httpx.Response(200, json={"sha": HEAD_SHA})
        )
        router.get(url__regex=re.escape(base) + r"/commits/tags/.+", name=f"tags:{full_name}").mock(
            return_value=httpx.Response(200, json={"sha": TAG_SHA})
        )
        router.get(url__regex=re.escape(base) + r"/commits/[0-9a-f]{40}$").mock(
            side_effect=lambda request, full_name=full_name: httpx.Response(
                200,
                json={
                    "sha": request.url.path.rsplit("/", 1)[1],
                    "html_url": f"https://github.com/{full_name}/commit/x",
                    "commit": {
                        "message": "Initial commit",
                        "author": {
                            "name": "Codertocat",
                            "email": "octocat@github.com",
                            "date": "2019-05-15T15:20:30Z",
                        },
                    },
                },
            )
        )
        # Named, so a test may serve another file under the same name.
        router.get(f"{base}/contents/screwdriver.yaml", name=f"config:{full_name}").mock(
            return_value=httpx.Response(200, content=config)
        )
        router.post(f"{base}/hooks").mock(return_value=httpx.Response(201, json={"id": 1}))
        # A pull request that changes no file unless a test says otherwise.
        router.get(
            url__regex=re.escape(base) + r"/pulls/\d+/files", name=f"pr-files:{full_name}"
        ).mock(return_value=httpx.Response(200, json=[]))


def signature(body: bytes, secret: str = SECRET) -> str:
    """Return GitHub's X-Hub-Signature-256 value for body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_delivery(server_url: str, event: str, payload: dict[str, Any], *, delivery: str) -> Any:
    """POST a signed delivery to a running server's /v4/webhooks, as GitHub does."""
    body = json.dumps(payload).encode()
    return httpx.post(
        f"{server_url}/v4/webhooks",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signature(body),
        },
        timeout=10,
    )


def deliver(
    client: Client,
    event: str,
    payload: dict[str, Any] | bytes,
    *,
    delivery: str,
    sig: str | None = None,
    extra: dict[str, str] | None = None,
) -> Any:
    """POST a delivery to /v4/webhooks, signed with SECRET unless sig says otherwise."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
    headers["X-Hub-Signature-256"] = signature(body) if sig is None else sig
    headers.update(extra or {})
    return client.post("/v4/webhooks", data=body, content_type="application/json", headers=headers)
