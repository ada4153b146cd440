"""Fixtures of the scm tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import Stack
from scm.tests.github_fakes import SECRET
from scm.tests.github_server import FakeGitHub, serve_github
from scm.tests.gitlab_server import FakeGitLab, serve_gitlab

# The servers' tokens: long and unlike anything else, so a search for them means something.
GITHUB_TOKEN = "ghs_FakeServerToken7f3a9c1e5b2d8a4f6c0e"
GITLAB_TOKEN = "glpat-FakeServerToken4d2b8e6a0c9f1e3b"
GITHUB_APP_ID = "4242"


@pytest.fixture(scope="session")
def github_app_key() -> rsa.RSAPrivateKey:
    """The GitHub App's RSA key, made once: making one takes a while."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def github_server() -> Iterator[tuple[str, FakeGitHub]]:
    """A GitHub Enterprise on 127.0.0.1 in a thread of this test: its base URL and its state.

    A repository in its `private` set opens to the server's token (as x-access-token).
    """
    with serve_github() as served:
        served[1].credential = ("x-access-token", GITHUB_TOKEN)
        yield served


@pytest.fixture
def github_app(
    settings: Any,
    tmp_path: Path,
    github_app_key: rsa.RSAPrivateKey,
    github_server: tuple[str, FakeGitHub],
) -> FakeGitHub:
    """The server is a GitHub App of that GitHub (its key in a PEM file), and the GitHub's
    git no longer takes the server's token: only installation tokens clone."""
    pem = tmp_path / "github-app.pem"
    pem.write_bytes(
        github_app_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    pem.chmod(0o600)
    settings.SD_GITHUB_APP_ID = GITHUB_APP_ID
    settings.SD_GITHUB_APP_PRIVATE_KEY_FILE = str(pem)
    github = github_server[1]
    github.app_id = GITHUB_APP_ID
    github.app_public_key = github_app_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    github.credential_clones = False
    return github


@pytest.fixture
def github_stack(
    stack: Stack, settings: Any, github_server: tuple[str, FakeGitHub]
) -> tuple[Stack, FakeGitHub]:
    """The running stack set up for that GitHub, in this process and in its worker."""
    base_url, github = github_server
    github_env = {
        "SD_GITHUB_API_URL": f"{base_url}/api/v3",
        "SD_GITHUB_TOKEN": GITHUB_TOKEN,
        "SD_GITHUB_WEBHOOK_SECRET": SECRET,
    }
    return _configured(stack, settings, github_env), github


@pytest.fixture
def gitlab_server() -> Iterator[tuple[str, FakeGitLab]]:
    """A self-managed GitLab on 127.0.0.1 in a thread of this test: its base URL and state.

    A project in its `private` set opens to the server's token (as oauth2).
    """
    with serve_gitlab() as served:
        served[1].credential = ("oauth2", GITLAB_TOKEN)
        yield served


@pytest.fixture
def gitlab_stack(
    stack: Stack, settings: Any, gitlab_server: tuple[str, FakeGitLab]
) -> tuple[Stack, FakeGitLab]:
    """The running stack set up for that GitLab, in this process and in its worker."""
    base_url, gitlab = gitlab_server
    gitlab_env = {"SD_GITLAB_URL": base_url, "SD_GITLAB_TOKEN": GITLAB_TOKEN}
    return _configured(stack, settings, gitlab_env), gitlab


def _configured(stack: Stack, settings: Any, env: dict[str, str]) -> Stack:
    for name, value in env.items():
        setattr(settings, name, value)
    # The worker is a process of its own: it learns about this SCM from its environment.
    stack.stop_worker()
    stack.env.update(env)
    stack.start_worker()
    return stack
