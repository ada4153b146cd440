"""JWTs in Screwdriver's model: scopes user, admin, guest, pipeline, build and temporal.

Signing and verifying only, from objects the caller already holds, with no model imports: so
the build kernel and the executors may issue a build's token. Looking a person up to sign
theirs is the API's job (`screwdriver_site.api.tokens`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone
from django.utils.crypto import salted_hmac

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

    from builds.models import Build

ALGORITHM = "HS256"
USER_TOKEN_LIFETIME = timedelta(hours=2)
GUEST_TOKEN_LIFETIME = timedelta(hours=2)
PIPELINE_TOKEN_LIFETIME = timedelta(hours=2)
# A build token outlives its timeout by this much, so a launcher can still report teardown.
BUILD_TOKEN_GRACE = timedelta(minutes=15)


class InvalidToken(Exception):
    """The presented token is malformed, expired or signed by someone else."""


@dataclass(frozen=True)
class Claims:
    """What a verified JWT grants."""

    username: str
    scope: tuple[str, ...]
    build_id: int | None = None
    pipeline_id: int | None = None
    job_id: int | None = None
    event_id: int | None = None
    # A user JWT's sign-in generation and password mark (None in other scopes).
    generation: int | None = None
    password_mark: str | None = None
    # A build token's attempt of its build (Build.infra_retries when it was issued); None in
    # tokens issued before attempts were numbered, and in other scopes.
    attempt: int | None = None

    @property
    def is_build(self) -> bool:
        return "build" in self.scope

    @property
    def is_temporal(self) -> bool:
        return "temporal" in self.scope

    @property
    def is_guest(self) -> bool:
        return "guest" in self.scope

    @property
    def is_pipeline(self) -> bool:
        return "pipeline" in self.scope


def new_api_token_value() -> str:
    return secrets.token_urlsafe(32)


def _key() -> str:
    return f"jwt:{settings.SECRET_KEY}"


def generation_of(user: AbstractBaseUser | None) -> int:
    """The user's sign-in generation: a user JWT of another one was revoked."""
    if user is None:
        return 0
    try:
        return int(user.sign_in_generation.generation)  # type: ignore[attr-defined]
    except ObjectDoesNotExist:
        return 0


def password_mark(user: AbstractBaseUser | None) -> str:
    """A keyed digest of the user's password hash: it changes whenever the password does.

    However the password changes (the API, admin, `changepassword`, `set_password` and save),
    every user JWT issued under the old one stops matching; no signal has to be caught.
    """
    stored = user.password if user is not None else ""
    return salted_hmac(
        "screwdriver.jwt.password", stored or "", secret=settings.SECRET_KEY, algorithm="sha256"
    ).hexdigest()[:32]


def sign_user_token(
    user: AbstractBaseUser | None, *, username: str, is_admin: bool, now: datetime | None = None
) -> str:
    """A person's JWT, tied to their sign-in generation and their current password."""
    now = now or timezone.now()
    payload: dict[str, Any] = {
        "username": username,
        "scope": ["user", "admin"] if is_admin else ["user"],
        "gen": generation_of(user),
        "pwd": password_mark(user),
        "iat": int(now.timestamp()),
        "exp": int((now + USER_TOKEN_LIFETIME).timestamp()),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(payload, _key(), algorithm=ALGORITHM)


def issue_guest_token(*, now: datetime | None = None) -> str:
    """A read-only token for public pipelines (only issued while SD_GUEST_ACCESS is on)."""
    now = now or timezone.now()
    payload: dict[str, Any] = {
        "username": f"guest/{secrets.token_hex(4)}",
        "scope": ["guest"],
        "iat": int(now.timestamp()),
        "exp": int((now + GUEST_TOKEN_LIFETIME).timestamp()),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(payload, _key(), algorithm=ALGORITHM)


def issue_pipeline_token(*, pipeline_id: int, now: datetime | None = None) -> str:
    """The JWT a pipeline's API token is exchanged for: it acts on that pipeline only."""
    now = now or timezone.now()
    payload: dict[str, Any] = {
        "username": f"pipeline/{pipeline_id}",
        "scope": ["pipeline"],
        "pipelineId": pipeline_id,
        "iat": int(now.timestamp()),
        "exp": int((now + PIPELINE_TOKEN_LIFETIME).timestamp()),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(payload, _key(), algorithm=ALGORITHM)


def issue_temporal_token(build: Build, *, now: datetime | None = None) -> str:
    """Screwdriver's temporal token: good only for exchanging at /v4/builds/{id}/token."""
    return issue_build_token(build, now=now, scope="temporal")


def issue_build_token(build: Build, *, now: datetime | None = None, scope: str = "build") -> str:
    now = now or timezone.now()
    expires = now + timedelta(seconds=build.timeout_seconds) + BUILD_TOKEN_GRACE
    payload: dict[str, Any] = {
        "username": str(build.pk),
        "scope": [scope],
        "buildId": build.pk,
        "jobId": build.job_id,
        "eventId": build.event_id,
        "pipelineId": build.job.pipeline_id,
        "isPR": build.event.type == "pr",
        # A retried build's new launcher gets a new token; the lost attempt's stops working.
        "attempt": build.infra_retries,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(payload, _key(), algorithm=ALGORITHM)


def decode(token: str) -> Claims:
    try:
        payload = jwt.decode(
            token, _key(), algorithms=[ALGORITHM], options={"require": ["exp", "scope"]}
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    scope = payload.get("scope")
    if not isinstance(scope, list) or not all(isinstance(s, str) for s in scope):
        raise InvalidToken("scope must be a list of strings")
    return Claims(
        username=str(payload.get("username", "")),
        scope=tuple(scope),
        build_id=payload.get("buildId"),
        pipeline_id=payload.get("pipelineId"),
        job_id=payload.get("jobId"),
        event_id=payload.get("eventId"),
        generation=payload.get("gen") if isinstance(payload.get("gen"), int) else None,
        password_mark=payload.get("pwd") if isinstance(payload.get("pwd"), str) else None,
        attempt=payload.get("attempt") if isinstance(payload.get("attempt"), int) else None,
    )
