"""`Authorization: Bearer X`: a JWT of any Screwdriver scope, or a user or pipeline API token."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from builds.models import FINISHED_STATUSES, Build
from pipelines.models import Pipeline, Token
from pipelines.services import touch_token
from screwdriver_site.tokens import Claims, InvalidToken, decode, generation_of, password_mark


class Principal(AnonymousUser):
    """A caller that is not a person: a guest, a pipeline or a build (Screwdriver's scopes)."""

    kind = ""
    pipeline_id: int | None = None

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True


class GuestPrincipal(Principal):
    """A guest: may read public pipelines while SD_GUEST_ACCESS is on."""

    kind = "guest"

    def get_username(self) -> str:
        return "guest"


class PipelinePrincipal(Principal):
    """A pipeline's own token: acts on that pipeline only."""

    kind = "pipeline"

    def __init__(self, pipeline_id: int) -> None:
        super().__init__()
        self.pipeline_id = pipeline_id

    def get_username(self) -> str:
        return f"pipeline:{self.pipeline_id}"


class BuildPrincipal(Principal):
    """The caller is a build's launcher: it may act on its own build and nothing else."""

    kind = "build"

    def __init__(self, claims: Claims, *, status: str, end_time: datetime | None) -> None:
        super().__init__()
        self.claims = claims
        self.pipeline_id = claims.pipeline_id
        self.status = status
        self.end_time = end_time
        if claims.is_temporal:
            self.kind = "temporal"

    @property
    def ended(self) -> bool:
        return self.status in FINISHED_STATUSES

    def get_username(self) -> str:
        return f"build:{self.claims.build_id}"


class BearerAuthentication(authentication.BaseAuthentication):
    """Reads a bearer JWT or API token; a bad one is a 401, a missing one is anonymous."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _, value = header.partition(" ")
        if keyword.lower() != self.keyword.lower():
            return None
        return self.authenticate_token(value.strip())

    def authenticate_token(self, value: str) -> tuple[Any, Any]:
        """The caller a bearer token stands for, and its claims (or API token row); a token
        that stands for nobody is AuthenticationFailed. The launcher's log socket
        (builds/consumers.py) checks its handshake's header with this too."""
        if not value:
            raise exceptions.AuthenticationFailed(
                "The Authorization header has no token after Bearer."
            )
        if value.count(".") == 2:
            return self._from_jwt(value)
        return self._from_api_token(value)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'

    def _from_jwt(self, value: str) -> tuple[Any, Claims]:
        try:
            claims = decode(value)
        except InvalidToken as exc:
            raise exceptions.AuthenticationFailed(f"The token is not valid: {exc}.") from exc
        if claims.is_build or claims.is_temporal:
            return self._build(claims), claims
        if claims.is_guest:
            if not settings.SD_GUEST_ACCESS:
                raise exceptions.AuthenticationFailed(
                    "Guest access is off on this server: sign in instead."
                )
            return GuestPrincipal(), claims
        if claims.is_pipeline:
            if not Pipeline.objects.filter(pk=int(claims.pipeline_id or 0)).exists():
                raise exceptions.AuthenticationFailed("The token's pipeline no longer exists.")
            return PipelinePrincipal(int(claims.pipeline_id or 0)), claims
        if "user" not in claims.scope:
            raise exceptions.AuthenticationFailed("The token has no scope this server knows.")
        user = (
            get_user_model()
            .objects.filter(username=claims.username, is_active=True)
            .select_related("sign_in_generation")
            .first()
        )
        if user is None:
            raise exceptions.AuthenticationFailed("The token's user no longer exists.")
        if claims.generation != generation_of(user) or not hmac.compare_digest(
            claims.password_mark or "", password_mark(user)
        ):
            raise exceptions.AuthenticationFailed(
                "The token was revoked by a sign-out or a password change: sign in again."
            )
        return user, claims

    def _build(self, claims: Claims) -> BuildPrincipal:
        row = (
            Build.objects.filter(
                pk=int(claims.build_id or 0), job__pipeline_id=int(claims.pipeline_id or 0)
            )
            .values("status", "end_time", "infra_retries")
            .first()
        )
        if row is None:
            raise exceptions.AuthenticationFailed("The token's build no longer exists.")
        if claims.attempt is not None and claims.attempt != row["infra_retries"]:
            # The launcher of a lost attempt may still be alive: it must not report on, or
            # take the clone credential of, the attempt that replaced it.
            raise exceptions.AuthenticationFailed(
                f"The token is of an earlier attempt of build {claims.build_id}, which was "
                "queued again: only the new attempt's launcher may act on it."
            )
        return BuildPrincipal(claims, status=row["status"], end_time=row["end_time"])

    def _from_api_token(self, value: str) -> tuple[Any, Token]:
        token = Token.objects.matching(value).select_related("user").first()
        if token is None or (token.user is not None and not token.user.is_active):
            raise exceptions.AuthenticationFailed("The API token is not valid: create a new one.")
        touch_token(token)
        if token.user is None:
            return PipelinePrincipal(int(token.pipeline_id or 0)), token
        return token.user, token


class BearerScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Tells the OpenAPI document that every route takes `Authorization: Bearer`."""

    target_class = "screwdriver_site.api.authentication.BearerAuthentication"
    name = "bearer"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A JWT from GET /v4/auth/token, or an API token as it is.",
        }
