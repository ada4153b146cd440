"""A GitHub Enterprise served from a thread on 127.0.0.1: the REST API calls the server makes,
answered from bare repositories on disk, and the repositories over git's HTTP protocol
(git_http.py: a repository in `private` needs the server's token to be read or cloned).

It is also GitHub App territory: given the app's id and public key, it checks the app's JWT
(RS256, issued by the app, for 10 minutes at most) on `GET /repos/{o}/{r}/installation` and
`POST /app/installations/{id}/access_tokens`, and issues installation tokens that open the
repositories asked for, for an hour, until `DELETE /installation/token` revokes one.

Processes the tests start (the worker, the launcher) reach it like a real GitHub.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt

from scm.tests.git_http import GitHost, IssuedToken, serve, serve_git
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
    # The GitHub App: its id, the PEM of its public key, and where it is installed
    # ("org/repo" -> installation id).
    app_id: str = ""
    app_public_key: bytes = b""
    installations: dict[str, int] = field(default_factory=dict)
    # Each request the app made ("GET path" or "POST path", its JSON body), the claims of its
    # JWTs, and the installation tokens revoked.
    app_requests: list[tuple[str, Any]] = field(default_factory=list)
    app_claims: list[dict[str, Any]] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)

    def app_caller(self, authorization: str) -> bool:
        """Whether the header carries a valid JWT of the app (recording its claims)."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not self.app_public_key:
            return False
        try:
            claims = jwt.decode(
                token,
                self.app_public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
            )
        except jwt.PyJWTError:
            return False
        with self.lock:
            self.app_claims.append(claims)
        # GitHub refuses a JWT that lives longer than 10 minutes.
        return claims["iss"] == self.app_id and claims["exp"] - claims["iat"] <= 600

    def issue_token(self, installation: int, body: Any) -> dict[str, Any] | None:
        """An installation token for the repositories asked for (all the installation's
        when none are named); None when one is not part of the installation."""
        installed = {name for name, i in self.installations.items() if i == installation}
        owners = {name.split("/")[0] for name in installed}
        asked = body.get("repositories") if isinstance(body, dict) else None
        repos = (
            {f"{owner}/{name}" for owner in owners for name in asked}
            if isinstance(asked, list)
            else installed
        )
        if not repos or not repos <= installed:
            return None
        token = "ghs_" + secrets.token_hex(18)
        expires = time.time() + 3600
        with self.lock:
            self.issued[token] = IssuedToken("x-access-token", frozenset(repos), expires)
        return {
            "token": token,
            "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
            "permissions": body.get("permissions") or {"contents": "read"},
            "repositories": [{"full_name": name} for name in sorted(repos)],
        }


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
                elif rest == ["installation"]:
                    self._installation(full_name)
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

        def _installation(self, full_name: str) -> None:
            with state.lock:
                state.app_requests.append((f"GET /repos/{full_name}/installation", None))
            if not state.app_caller(self.headers.get("Authorization", "")):
                self._json(401, {"message": "A JSON web token could not be decoded"})
            elif full_name not in state.installations:
                self._json(404, {"message": "Not Found"})
            else:
                installation = state.installations[full_name]
                owner = full_name.split("/")[0]
                self._json(200, {"id": installation, "account": {"login": owner}})

        def _access_token(self, installation: str, body: Any) -> None:
            with state.lock:
                path = f"/app/installations/{installation}/access_tokens"
                state.app_requests.append((f"POST {path}", body))
            if not state.app_caller(self.headers.get("Authorization", "")):
                self._json(401, {"message": "A JSON web token could not be decoded"})
                return
            issued = state.issue_token(int(installation), body) if installation.isdigit() else None
            if issued is None:
                self._json(422, {"message": "There is at least one repository that does not exist"})
            else:
                self._json(201, issued)

        def do_DELETE(self) -> None:
            parts = urlsplit(self.path).path.strip("/").split("/")
            if parts != ["api", "v3", "installation", "token"]:
                self._unknown()
                return
            scheme, _, token = self.headers.get("Authorization", "").partition(" ")
            with state.lock:
                found = state.issued.pop(token, None) if scheme.lower() == "bearer" else None
                if found is not None:
                    state.revoked.append(token)
            if found is None:
                self._json(401, {"message": "Bad credentials"})
            else:
                self._send(204, b"")

        def do_POST(self) -> None:
            if serve_git(self, state):
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            parts = urlsplit(self.path).path.strip("/").split("/")
            if parts[:4] == ["api", "v3", "app", "installations"] and parts[5:] == [
                "access_tokens"
            ]:
                self._access_token(parts[4], body)
            elif parts[:3] == ["api", "v3", "repos"] and parts[5:6] == ["statuses"]:
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
