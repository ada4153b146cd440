"""A GitHub Enterprise served from a thread on 127.0.0.1: the REST API calls the server makes,
answered from bare repositories on disk, and the repositories over git's HTTP protocol
(git_http.py: a repository in `private` needs the server's token to be read or cloned).

Processes the tests start (the worker, the launcher) reach it like a real GitHub.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from scm.tests.git_http import GitHost, serve, serve_git
from scm.tests.git_http import git_run as _git


@dataclass
class FakeGitHub(GitHost):
    """What the fake server saw besides git requests: statuses posted, hooks created, pull
    request comments (kept as GitHub keeps them, by id)."""

    statuses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    # comment id -> (pull request number, body); `comment_writes` lists ("POST"|"PATCH", id).
    comments: dict[int, tuple[int, str]] = field(default_factory=dict)
    comment_writes: list[tuple[str, int]] = field(default_factory=list)
    # While `hold` is set, reads of a file's contents wait for it to clear (a slow GitHub);
    # `held` counts the reads that waited.
    hold: threading.Event = field(default_factory=threading.Event)
    held: int = 0
    # Pull request number -> its base branch, for the files it changes; "main" if not listed.
    pull_bases: dict[int, str] = field(default_factory=dict)


def handler_for(state: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: Any) -> None:
            self._send(status, json.dumps(data).encode())

        def _commit(self, bare: Path, name: str, full_name: str) -> None:
            rev = name.removeprefix("heads/").removeprefix("tags/")
            found = _git(bare, "rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}")
            if found.returncode:
                self._json(404, {"message": "No commit found"})
                return
            sha = found.stdout.decode().strip()
            shown = _git(bare, "show", "-s", "--format=%an%x00%ae%x00%aI%x00%B", sha)
            author, email, date, message = shown.stdout.decode().split("\0", 3)
            self._json(
                200,
                {
                    "sha": sha,
                    "html_url": f"http://ghe/{full_name}/commit/{sha}",
                    "commit": {
                        "message": message.strip(),
                        "author": {"name": author, "email": email, "date": date},
                    },
                },
            )

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            parts = unquote(url.path).strip("/").split("/")
            if parts[:3] == ["api", "v3", "repos"] and len(parts) >= 5:
                full_name = f"{parts[3]}/{parts[4]}"
                bare = state.repos.get(full_name)
                rest = parts[5:]
                private = full_name in state.private
                if bare is None or (private and not self.headers.get("Authorization")):
                    self._json(404, {"message": "Not Found"})
                elif not rest:
                    self._json(
                        200,
                        {
                            "full_name": full_name,
                            "default_branch": "main",
                            "private": private,
                            "permissions": {"admin": True, "push": True, "pull": True},
                        },
                    )
                elif rest[0] == "commits":
                    self._commit(bare, "/".join(rest[1:]), full_name)
                elif rest[0] == "contents":
                    if state.hold.is_set():
                        with state.lock:
                            state.held += 1
                        while state.hold.is_set():
                            time.sleep(0.05)
                    ref = parse_qs(url.query).get("ref", ["HEAD"])[0]
                    shown = _git(bare, "show", f"{ref}:{'/'.join(rest[1:])}")
                    if shown.returncode:
                        self._json(404, {"message": "Not Found"})
                    else:
                        self._send(200, shown.stdout, "application/vnd.github.raw")
                elif rest[0] == "pulls" and rest[2:] == ["files"]:
                    # The pull request's whole diff against the base, as GitHub lists it.
                    head, page = f"refs/pull/{rest[1]}/head", parse_qs(url.query).get("page")
                    base = state.pull_bases.get(int(rest[1]), "main")
                    diff = _git(bare, "diff", "--name-only", f"{base}...{head}")
                    names = diff.stdout.decode().split() if page in (None, ["1"]) else []
                    self._json(200, [{"filename": name} for name in names])
                else:
                    self._unknown()
                return
            if not serve_git(self, state):
                self._unknown()

        def do_POST(self) -> None:
            if serve_git(self, state):
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            parts = urlsplit(self.path).path.strip("/").split("/")
            if parts[:3] == ["api", "v3", "repos"] and parts[5:6] == ["statuses"]:
                with state.lock:
                    state.statuses.append((parts[6], body))
                self._json(201, {"state": body.get("state")})
            elif (
                parts[:3] == ["api", "v3", "repos"]
                and parts[5:6] == ["issues"]
                and (len(parts) == 8 and parts[7] == "comments" and parts[6].isdigit())
            ):
                with state.lock:
                    comment_id = len(state.comment_writes) + 1
                    state.comments[comment_id] = (int(parts[6]), str(body.get("body")))
                    state.comment_writes.append(("POST", comment_id))
                self._json(201, {"id": comment_id, "body": body.get("body")})
            elif parts[:3] == ["api", "v3", "repos"] and parts[5:6] == ["hooks"]:
                with state.lock:
                    state.hooks.append(body)
                self._json(201, {"id": len(state.hooks)})
            else:
                self._unknown()

        def do_PATCH(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            parts = urlsplit(self.path).path.strip("/").split("/")
            if parts[:3] == ["api", "v3", "repos"] and parts[5:7] == ["issues", "comments"]:
                comment_id = int(parts[7]) if parts[7:8] and parts[7].isdigit() else 0
                with state.lock:
                    found = state.comments.get(comment_id)
                    if found is not None:
                        state.comments[comment_id] = (found[0], str(body.get("body")))
                        state.comment_writes.append(("PATCH", comment_id))
                if found is None:
                    self._json(404, {"message": "Not Found"})
                else:
                    self._json(200, {"id": comment_id, "body": body.get("body")})
            else:
                self._unknown()

        def _unknown(self) -> None:
            with state.lock:
                state.unknown.append(f"{self.command} {self.path}")
            self._json(404, {"message": "Not Found"})

    return Handler


@contextmanager
def serve_github() -> Iterator[tuple[str, FakeGitHub]]:
    """Run a fake GitHub Enterprise until the block ends: its base URL and its state."""
    state = FakeGitHub(repos={})
    try:
        with serve(handler_for(state)) as url:
            yield url, state
    finally:
        state.hold.clear()
