"""Fixtures of the scm tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Stack
from scm.tests.github_fakes import SECRET
from scm.tests.github_server import FakeGitHub, serve_github


@pytest.fixture
def github_server() -> Iterator[tuple[str, FakeGitHub]]:
    """A GitHub Enterprise on 127.0.0.1 in a thread of this test: its base URL and its state."""
    with serve_github() as served:
        yield served


@pytest.fixture
def github_stack(
    stack: Stack, settings: Any, github_server: tuple[str, FakeGitHub]
) -> tuple[Stack, FakeGitHub]:
    """The running stack set up for that GitHub, in this process and in its worker."""
    base_url, github = github_server
    github_env = {
        "SD_GITHUB_API_URL": f"{base_url}/api/v3",
        "SD_GITHUB_TOKEN": "server-token",
        "SD_GITHUB_WEBHOOK_SECRET": SECRET,
    }
    for name, value in github_env.items():
        setattr(settings, name, value)
    # The worker is a process of its own: it learns about this GitHub from its environment.
    stack.stop_worker()
    stack.env.update(github_env)
    stack.start_worker()
    return stack, github
