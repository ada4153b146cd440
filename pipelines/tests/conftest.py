"""Fixtures of the pipelines tests (the people are the root conftest's): a repository."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import GitRepo


@pytest.fixture
def repo(make_repo: Callable[..., GitRepo]) -> Path:
    """A real bare repository whose main branch holds a one-job screwdriver.yaml."""
    files = {
        "screwdriver.yaml": "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n"
        "    steps:\n      - hi: echo hi\n"
    }
    return make_repo(files, "repo").bare
