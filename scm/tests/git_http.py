"""Bare repositories served over git's smart HTTP protocol, as GitHub and GitLab serve them.

The fake SCMs (github_server.py, gitlab_server.py) hand every request for `/<path>.git/...`
to `serve_git`, which runs git's own CGI program (`git http-backend`), so clones may be
shallow and fetch a commit by its sha. A repository marked private answers 401 to a request
without an accepted user name and token (HTTP Basic), as the real ones do: the host's own
`credential` (while `credential_clones`), or a token the fake SCM issued (`issued`: a GitHub
App installation token, a GitLab deploy token) for that repository, until it expires.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

ANONYMOUS = "-"


@dataclass(frozen=True)
class IssuedToken:
    """A token the fake SCM issued: who presents it, what it opens, until when (epoch s)."""

    username: str
    repos: frozenset[str]
    expires_at: float


@dataclass
class GitHost:
    """The repositories a fake SCM serves, the credential it accepts, and what it saw."""

    repos: dict[str, Path]  # "org/name" (or "group/sub/name") -> bare repository
    # Repositories that refuse anonymous requests; `credential` (user, token) opens them.
    private: set[str] = field(default_factory=set)
    credential: tuple[str, str] = ("", "")
    # False: `credential` opens the REST API only, never a clone (the server must clone with
    # a token issued for the build).
    credential_clones: bool = True
    # Issued tokens by value; an SCM's revocation removes them.
    issued: dict[str, IssuedToken] = field(default_factory=dict)
    # Each git request: the repository's file asked for, and who asked (ANONYMOUS or a user).
    git_files: list[str] = field(default_factory=list)
    git_callers: list[str] = field(default_factory=list)
    refused: int = 0
    # False: git's protocol v0 only, whose servers refuse a commit asked for by its sha.
    protocol_v2: bool = True
    unknown: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def caller(self, authorization: str, repo: str) -> str:
        """Who an Authorization header names to `repo`: ANONYMOUS, or the user whose token
        opens it."""
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return ANONYMOUS
        try:
            user, _, token = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return ANONYMOUS
        if self.credential_clones and (user, token) == self.credential:
            return user
        with self.lock:
            issued = self.issued.get(token)
        if (
            issued is not None
            and issued.username == user
            and repo in issued.repos
            and issued.expires_at > time.time()
        ):
            return user
        return ANONYMOUS


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                handler.rfile.readline()
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def serve_git(handler: BaseHTTPRequestHandler, host: GitHost) -> bool:
    """Answer a git request for one of the host's repositories; False when it names none."""
    url = urlsplit(handler.path)
    found = [(n, b) for n, b in host.repos.items() if url.path.startswith(f"/{n}.git/")]
    if not found:
        return False
    name, bare = found[0]
    rest = url.path.removeprefix(f"/{name}.git/")
    caller = host.caller(handler.headers.get("Authorization", ""), name)
    with host.lock:
        host.git_files.append(rest)
        host.git_callers.append(caller)
    body = _read_body(handler)
    if name in host.private and caller == ANONYMOUS:
        with host.lock:
            host.refused += 1
        handler.send_response(401)
        handler.send_header("WWW-Authenticate", 'Basic realm="fake SCM"')
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_PROJECT_ROOT": str(bare.parent),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": f"/{bare.name}/{rest}",
        "QUERY_STRING": url.query,
        "REQUEST_METHOD": handler.command,
        "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_CONTENT_ENCODING": handler.headers.get("Content-Encoding", ""),
        # Protocol v2, as a web server passes git's header on.
        "GIT_PROTOCOL": handler.headers.get("Git-Protocol", "") if host.protocol_v2 else "",
        "REMOTE_USER": caller,
        "REMOTE_ADDR": "127.0.0.1",
    }
    done = subprocess.run(
        ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60, check=False
    )
    head, _, data = done.stdout.partition(b"\r\n\r\n")
    status, headers = 200, []
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.split()[0])
        elif name:
            headers.append((name, value.strip()))
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
    return True


def git_run(bare: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """git in a bare repository, without the machine's user configuration."""
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null"}
    return subprocess.run(["git", "-C", str(bare), *args], env=env, capture_output=True)


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on 127.0.0.1 from a thread until the block ends; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
