"""GitHub's pull request comments and commit statuses at the HTTP boundary (respx), kept as
GitHub keeps them, for the pull request builds of the tests."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import respx

from scm.tests.github_fakes import API

REPO = "Codertocat/Hello-World"
PR_CONFIG = b"""
jobs:
  main:
    image: node:20
    requires: [~commit]
    steps:
      - build: echo main
  test:
    image: node:20
    requires: [~pr]
    steps:
      - test: echo test
"""


@dataclass
class GitHubSeen:
    """What the GitHub stand-in was asked about pull request comments and statuses."""

    comments: dict[str, str] = field(default_factory=dict)  # id -> body
    created: list[str] = field(default_factory=list)  # ids, in order
    edited: list[str] = field(default_factory=list)
    statuses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (sha, body)
    # While set, comment creations are answered with this status (a GitHub outage).
    refuse_comments: int | None = None


def fake_pull_request_feedback(router: respx.Router, full_name: str) -> GitHubSeen:
    """Answer comment creations and edits and status posts of ``full_name``; return what
    they were."""
    seen = GitHubSeen()
    base = re.escape(f"{API}/repos/{full_name}")

    def create(request: httpx.Request) -> httpx.Response:
        if seen.refuse_comments:
            return httpx.Response(seen.refuse_comments, json={"message": "Server Error"})
        comment_id = str(len(seen.created) + 1001)
        seen.comments[comment_id] = json.loads(request.content)["body"]
        seen.created.append(comment_id)
        return httpx.Response(201, json={"id": int(comment_id)})

    def edit(request: httpx.Request) -> httpx.Response:
        comment_id = request.url.path.rsplit("/", 1)[1]
        if comment_id not in seen.comments:
            return httpx.Response(404, json={"message": "Not Found"})
        seen.comments[comment_id] = json.loads(request.content)["body"]
        seen.edited.append(comment_id)
        return httpx.Response(200, json={"id": int(comment_id)})

    def status(request: httpx.Request) -> httpx.Response:
        seen.statuses.append((request.url.path.rsplit("/", 1)[1], json.loads(request.content)))
        return httpx.Response(201, json={})

    router.post(url__regex=base + r"/issues/\d+/comments$").mock(side_effect=create)
    router.patch(url__regex=base + r"/issues/comments/\d+$").mock(side_effect=edit)
    router.post(url__regex=base + r"/statuses/[0-9a-f]{40}$").mock(side_effect=status)
    return seen
