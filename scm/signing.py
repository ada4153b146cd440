"""HMAC-SHA256 signatures for push notifications, in GitHub's "sha256=<hex>" header form."""

from __future__ import annotations

import hashlib
import hmac
import re

from django.conf import settings

SIGNATURE_HEADER = "X-Screwdriver-Signature-256"

_HEADER_RE = re.compile(r"sha256=([0-9a-f]{64})", re.ASCII)


def sign(body: bytes, key: bytes) -> str:
    """Return the signature header value for body."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(body: bytes, key: bytes, header: str | None) -> bool:
    """Return True only if header is a valid sha256 signature of body under key."""
    if not header:
        return False
    match = _HEADER_RE.fullmatch(header.strip().lower())
    if match is None:
        # Missing, malformed or another algorithm (sha1=...): never a downgrade path.
        return False
    expected = hmac.new(key, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), match.group(1).encode("ascii"))


def repository_key(repo_path: str) -> bytes:
    """Return the hook key for one local repository, derived from the server's secret key."""
    # One key per repository: the key sits in a file inside the repository, so anyone who can
    # read it could otherwise forge pushes for every other repository on the server.
    return hmac.new(
        settings.SECRET_KEY.encode("utf-8"),
        b"local-hook:" + repo_path.encode("utf-8"),
        hashlib.sha256,
    ).digest()


def gitlab_hook_token(project_path: str) -> str:
    """Return the X-Gitlab-Token of one GitLab project's hook (HMAC-SHA256 hex).

    Derived from SD_GITLAB_WEBHOOK_TOKEN and the project's path, so a token seen in one
    project's hook settings can never act on another project.
    """
    return hmac.new(
        settings.SD_GITLAB_WEBHOOK_TOKEN.encode("utf-8"),
        b"gitlab-hook:" + project_path.lower().encode("utf-8"),
        hashlib.sha256,
    ).hexdigest()
