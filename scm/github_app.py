"""The GitHub App the server may be: the JWT that authenticates it to GitHub's REST API.

GitHub signs nothing for us here; we sign: an RS256 JWT whose issuer is the app's id, issued
60 seconds in the past (GitHub's clock may be behind ours) and expiring within GitHub's limit
of 10 minutes. With it the server asks for installation tokens (scm/github.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from django.conf import settings

from scm.base import ScmError

# GitHub refuses an app JWT that expires more than 10 minutes after it was issued.
ISSUED_BEFORE = timedelta(seconds=60)
LIFETIME = timedelta(minutes=10)
# A PEM file larger than this is not a private key.
MAX_KEY_BYTES = 64 * 1024


def app_configured() -> bool:
    """Whether the operator set up a GitHub App (its id and its private key's file)."""
    return bool(settings.SD_GITHUB_APP_ID and settings.SD_GITHUB_APP_PRIVATE_KEY_FILE)


def _private_key() -> bytes:
    path = Path(str(settings.SD_GITHUB_APP_PRIVATE_KEY_FILE))
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise ScmError(
            f"SD_GITHUB_APP_PRIVATE_KEY_FILE names a file the server cannot read "
            f"({exc.strerror}): the operator must fix it."
        ) from None
    if len(data) > MAX_KEY_BYTES or b"PRIVATE KEY" not in data:
        raise ScmError(
            "SD_GITHUB_APP_PRIVATE_KEY_FILE holds no PEM private key: the operator must give "
            "it the key GitHub generated for the app."
        )
    return data


def app_jwt(*, now: datetime | None = None) -> str:
    """A JWT that authenticates the GitHub App for the next nine minutes or so."""
    issued = (now or datetime.now(UTC)) - ISSUED_BEFORE
    claims = {
        "iat": int(issued.timestamp()),
        "exp": int((issued + LIFETIME).timestamp()),
        "iss": str(settings.SD_GITHUB_APP_ID),
    }
    try:
        return jwt.encode(claims, _private_key(), algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise ScmError(
            f"The GitHub App's private key cannot sign ({type(exc).__name__}): the operator "
            "must give SD_GITHUB_APP_PRIVATE_KEY_FILE the RSA key GitHub generated for the app."
        ) from None
