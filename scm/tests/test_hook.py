from __future__ import annotations

import io
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scm.hook_notify import build_body, parse_refs
from scm.local import LocalGitScm
from scm.signing import SIGNATURE_HEADER, verify

KEY = b"per-repository-key"


@dataclass
class Received:
    """What the stand-in server got."""

    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's git config (hooksPath, signing, default branch) out of the tests."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@example.com",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=30
    )


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    """A tiny HTTP server on 127.0.0.1 standing in for the Screwdriver server."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.requests.append((self.path, dict(self.headers.items()), body))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v4/webhooks/local", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def repos(tmp_path: Path) -> tuple[Path, Path]:
    """A bare repository with one commit on main, and a clone of it to push from."""
    bare = tmp_path / "repo.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    git(clone, "checkout", "-q", "-b", "main")
    (clone / "screwdriver.yaml").write_text("jobs: {}\n")
    git(clone, "add", "screwdriver.yaml")
    git(clone, "commit", "-q", "-m", "First")
    git(clone, "push", "-q", "origin", "main")
    return bare, clone


def push_a_commit(clone: Path) -> tuple[subprocess.CompletedProcess[str], str, str]:
    before = git(clone, "rev-parse", "HEAD").stdout.strip()
    (clone / "b.txt").write_text("b\n")
    git(clone, "add", "b.txt")
    git(clone, "commit", "-q", "-m", "Second")
    after = git(clone, "rev-parse", "HEAD").stdout.strip()
    return git(clone, "push", "origin", "main"), before, after


def test_a_push_notifies_the_server_with_a_signed_body(
    repos: tuple[Path, Path], receiver: tuple[str, Received]
) -> None:
    bare, clone = repos
    url, received = receiver
    scm = LocalGitScm()
    assert scm.install_hook(scm.parse_url(str(bare)), notify_url=url, key=KEY)

    result, before, after = push_a_commit(clone)

    assert "notified the server" in result.stderr
    [(path, headers, body)] = received.requests
    assert path == "/v4/webhooks/local"
    assert headers["Content-Type"] == "application/json"
    assert verify(body, KEY, headers[SIGNATURE_HEADER])
    assert not verify(body, b"another-repository-key", headers[SIGNATURE_HEADER])
    assert body == build_body(
        str(bare), [{"before": before, "after": after, "ref": "refs/heads/main"}]
    )


def test_a_push_succeeds_when_nothing_listens(repos: tuple[Path, Path]) -> None:
    bare, clone = repos
    with socket.socket() as probe:  # a port that was free a moment ago refuses connections
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    scm = LocalGitScm()
    scm.install_hook(scm.parse_url(str(bare)), notify_url=f"http://127.0.0.1:{port}/", key=KEY)

    result, _, after = push_a_commit(clone)

    assert result.returncode == 0
    assert "could not reach the server" in result.stderr
    assert "polling will pick the push up" in result.stderr
    assert git(bare, "rev-parse", "main").stdout.strip() == after


@pytest.mark.slow
def test_a_push_is_not_held_up_by_a_server_that_never_answers(repos: tuple[Path, Path]) -> None:
    bare, clone = repos
    # Listening but never accepting: the connection opens and the request then hangs.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        scm = LocalGitScm()
        scm.install_hook(scm.parse_url(str(bare)), notify_url=f"http://127.0.0.1:{port}/", key=KEY)
        started = time.monotonic()
        result, _, _ = push_a_commit(clone)
        elapsed = time.monotonic() - started

    assert result.returncode == 0
    assert "polling will pick the push up" in result.stderr
    assert elapsed < 8


def test_a_push_succeeds_when_the_hook_config_is_gone(repos: tuple[Path, Path]) -> None:
    bare, clone = repos
    scm = LocalGitScm()
    scm.install_hook(scm.parse_url(str(bare)), notify_url="http://127.0.0.1:9/", key=KEY)
    (bare / "hooks" / "screwdriver-hook.json").unlink()

    result, _, _ = push_a_commit(clone)

    assert "could not notify the server" in result.stderr


def test_parse_refs_reads_post_receive_lines_and_skips_junk() -> None:
    old, new = "a" * 40, "b" * 40
    lines = io.StringIO(f"{old} {new} refs/heads/main\n\nnonsense\n{new} {old} refs/tags/v1\n")
    assert parse_refs(lines) == [
        {"before": old, "after": new, "ref": "refs/heads/main"},
        {"before": new, "after": old, "ref": "refs/tags/v1"},
    ]
