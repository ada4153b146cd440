"""Fixtures of the pipelines tests: the people who use a pipeline's pages, and a repository."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from conftest import GitRepo


@pytest.fixture
def admin_client(client: Client) -> Client:
    """Alice, signed in: the admin of every pipeline `make_pipeline` writes after she exists.

    This replaces pytest-django's fixture of the same name, a server admin's client.
    """
    client.force_login(User.objects.create_user("alice", first_name="Alice"))
    return client


@pytest.fixture
def member_client() -> Client:
    """Bob, signed in, with no role on any pipeline."""
    other = Client()
    other.force_login(User.objects.create_user("bob"))
    return other


@pytest.fixture
def repo(make_repo: Callable[..., GitRepo]) -> Path:
    """A real bare repository whose main branch holds a one-job screwdriver.yaml."""
    files = {
        "screwdriver.yaml": "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n"
        "    steps:\n      - hi: echo hi\n"
    }
    return make_repo(files, "repo").bare
