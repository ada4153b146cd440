"""A self-managed GitLab served from a thread on 127.0.0.1: the REST API (v4) calls the server
makes, answered from bare repositories on disk, and the repositories over git's HTTP protocol
(git_http.py: a project in `private` needs the server's token to be read or cloned).

It issues project deploy tokens to the server's token (`POST /projects/:id/deploy_tokens`,
refused with 403 while `deploy_token_rights` is off, as for a token below Maintainer), lists
them without their values, and revokes them (`DELETE /projects/:id/deploy_tokens/:id`); one
with `read_repository` opens that project's repository until it expires or is revoked.

Processes the tests start (the worker, the launcher) reach it like a real GitLab.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from scm.tests.git_http import GitHost, IssuedToken, git_run, serve, serve_git


@dataclass
class FakeGitLab(GitHost):
    """What the fake server saw besides git requests: the commit statuses posted."""

    statuses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Deploy tokens by id, as GitLab lists them plus "project", "token" and "revoked"; the
    # bodies of the requests that made them.
    deploy_tokens: dict[int, dict[str, Any]] = field(default_factory=dict)
    deploy_token_requests: list[dict[str, Any]] = field(default_factory=list)
    deploy_token_rights: bool = True

    def make_deploy_token(self, project: str, body: Any, authorization: str) -> dict[str, Any]:
        """A deploy token as POST answers it; {} when the caller may not make one."""
        with self.lock:
            self.deploy_token_requests.append(body)
        if not self.deploy_token_rights or authorization != f"Bearer {self.credential[1]}":
            return {}
        expires = datetime.fromisoformat(str(body["expires_at"]).replace("Z", "+00:00"))
        with self.lock:
            token_id = len(self.deploy_tokens) + 1
            row = {
                "id": token_id,
                "name": str(body["name"]),
                "username": f"gitlab+deploy-token-{token_id}",
                "expires_at": body["expires_at"],
                "scopes": list(body["scopes"]),
                "revoked": False,
                "expired": False,
                "project": project,
                "token": "gldt-" + secrets.token_hex(10),
            }
            self.deploy_tokens[token_id] = row
            if "read_repository" in row["scopes"]:
                self.issued[row["token"]] = IssuedToken(
                    row["username"], frozenset({project}), expires.timestamp()
                )
        return row

    def revoke_deploy_token(self, project: str, token_id: str) -> bool:
        with self.lock:
            row = self.deploy_tokens.get(int(token_id)) if token_id.isdigit() else None
            if row is None or row["project"] != project or row["revoked"]:
                return False
            row["revoked"] = True
            self.issued.pop(row["token"], None)
        return True

    def listed_deploy_tokens(self, project: str) -> list[dict[str, Any]]:
        hidden = ("project", "token")
        with self.lock:
            rows = [r for r in self.deploy_tokens.values() if r["project"] == project]
        return [{k: v for k, v in r.items() if k not in hidden} for r in rows]


def handler_for(state: FakeGitLab) -> type[BaseHTTPRequestHandler]:
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

        def _project(self) -> tuple[str, Path, list[str]] | None:
            """The project a REST path names (its path, repository and the rest of the path);
            None, answered 404, for one that does not exist or that the caller may not see."""
            parts = urlsplit(self.path).path.strip("/").split("/")
            if parts[:3] != ["api", "v4", "projects"] or len(parts) < 4:
                self._unknown()
                return None
            path = unquote(parts[3])
            bare = state.repos.get(path)
            if bare is None or (path in state.private and not self.headers.get("Authorization")):
                self._json(404, {"message": "404 Project Not Found"})
                return None
            return path, bare, [unquote(p) for p in parts[4:]]

        def _commit(self, bare: Path, name: str, path: str) -> None:
            found = git_run(bare, "rev-parse", "--verify", "--end-of-options", f"{name}^{{commit}}")
            if found.returncode:
                self._json(404, {"message": "404 Commit Not Found"})
                return
            sha = found.stdout.decode().strip()
            shown = git_run(bare, "show", "-s", "--format=%an%x00%ae%x00%aI%x00%B", sha)
            author, email, date, message = shown.stdout.decode().split("\0", 3)
            self._json(
                200,
                {
                    "id": sha,
                    "message": message.strip(),
                    "author_name": author,
                    "author_email": email,
                    "authored_date": date,
                    "web_url": f"http://gitlab/{path}/-/commit/{sha}",
                },
            )

        def do_GET(self) -> None:
            if serve_git(self, state):
                return
            found = self._project()
            if found is None:
                return
            path, bare, rest = found
            if not rest:
                self._json(
                    200,
                    {
                        "id": 1,
                        "path_with_namespace": path,
                        "default_branch": "main",
                        "visibility": "private" if path in state.private else "public",
                        # Whoever asks maintains it (scm_people.repository_admin).
                        "permissions": {"project_access": {"access_level": 50}},
                    },
                )
            elif rest == ["deploy_tokens"]:
                query = parse_qs(urlsplit(self.path).query)
                page, per_page = int(query["page"][0]), int(query["per_page"][0])
                rows = state.listed_deploy_tokens(path)
                self._json(200, rows[(page - 1) * per_page : page * per_page])
            elif rest[:2] == ["repository", "commits"] and len(rest) == 3:
                self._commit(bare, rest[2], path)
            elif rest[:2] == ["repository", "files"] and rest[-1:] == ["raw"]:
                ref = parse_qs(urlsplit(self.path).query).get("ref", ["HEAD"])[0]
                shown = git_run(bare, "show", f"{ref}:{'/'.join(rest[2:-1])}")
                if shown.returncode:
                    self._json(404, {"message": "404 File Not Found"})
                else:
                    self._send(200, shown.stdout, "text/plain")
            else:
                self._unknown()

        def do_POST(self) -> None:
            if serve_git(self, state):
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            found = self._project()
            if found is None:
                return
            path, _bare, rest = found
            if rest[:1] == ["statuses"] and len(rest) == 2:
                with state.lock:
                    state.statuses.append((rest[1], body))
                self._json(201, {"status": body.get("state")})
            elif rest == ["deploy_tokens"]:
                made = state.make_deploy_token(path, body, self.headers.get("Authorization", ""))
                if made:
                    self._json(201, {k: v for k, v in made.items() if k != "project"})
                else:
                    self._json(403, {"message": "403 Forbidden"})
            else:
                self._unknown()

        def do_DELETE(self) -> None:
            found = self._project()
            if found is None:
                return
            path, _bare, rest = found
            if rest[:1] == ["deploy_tokens"] and len(rest) == 2:
                if state.revoke_deploy_token(path, rest[1]):
                    self._send(204, b"")
                else:
                    self._json(404, {"message": "404 Not Found"})
            else:
                self._unknown()

        def _unknown(self) -> None:
            with state.lock:
                state.unknown.append(f"{self.command} {self.path}")
            self._json(404, {"message": "404 Not Found"})

    return Handler


@contextmanager
def serve_gitlab() -> Iterator[tuple[str, FakeGitLab]]:
    """Run a fake GitLab until the block ends: its base URL and its state."""
    state = FakeGitLab(repos={})
    with serve(handler_for(state)) as url:
        yield url, state
