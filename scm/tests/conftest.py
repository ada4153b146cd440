"""Fixtures of the scm tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scm.tests.github_server import FakeGitHub, serve_github


@pytest.fixture
def github_server() -> Iterator[tuple[str, FakeGitHub]]:
    """A GitHub Enterprise on 127.0.0.1 in a thread of this test: its base URL and its state."""
    with serve_github() as served:
        yield served
