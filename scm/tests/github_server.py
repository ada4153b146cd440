"""A GitHub Enterprise served from a thread on 127.0.0.1: the REST API calls the server makes,
answered from bare repositories on disk, and the repositories over git's dumb HTTP protocol.

Processes the tests start (the worker, the launcher) reach it like a real GitHub.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class FakeGitHub:
    """What the fake server saw: commit statuses posted, hooks created, unknown requests."""

    repos: dict[str, Path]  # "org/name" -> bare repository
    statuses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    git_files: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # While `hold` is set, reads of a file's contents wait for it to clear (a slow GitHub);
    # `held` counts the reads that waited.
    hold: threading.Event = field(default_factory=threading.Event)
    held: int = 0


def _git(bare: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null"}
    return subprocess.run(["git", "-C", str(bare), *args], env=env, capture_output=True)


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
                if bare is None:
                    self._json(404, {"message": "Not Found"})
                elif not rest:
                    self._json(
                        200,
                        {
                            "full_name": full_name,
                            "default_branch": "main",
                            "private": False,
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
                    diff = _git(bare, "diff", "--name-only", f"main...{head}")
                    names = diff.stdout.decode().split() if page in (None, ["1"]) else []
                    self._json(200, [{"filename": name} for name in names])
                else:
                    self._unknown()
                return
            # git's dumb HTTP protocol: the bare repository's files, served as they are.
            for full_name, bare in state.repos.items():
                prefix = f"/{full_name}.git/"
                if url.path.startswith(prefix):
                    path = (bare / url.path.removeprefix(prefix)).resolve()
                    with state.lock:
                        state.git_files.append(url.path.removeprefix(prefix))
                    if path.is_relative_to(bare) and path.is_file():
                        self._send(200, path.read_bytes(), "application/octet-stream")
                    else:
                        self._send(404, b"", "text/plain")
                    return
            self._unknown()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            parts = urlsplit(self.path).path.strip("/").split("/")
            if parts[:3] == ["api", "v3", "repos"] and parts[5:6] == ["statuses"]:
                with state.lock:
                    state.statuses.append((parts[6], body))
                self._json(201, {"state": body.get("state")})
            elif parts[:3] == ["api", "v3", "repos"] and parts[5:6] == ["hooks"]:
                with state.lock:
                    state.hooks.append(body)
                self._json(201, {"id": len(state.hooks)})
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
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        state.hold.clear()
        server.shutdown()
        server.server_close()
