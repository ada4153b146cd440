"""`Authorization: Bearer X`: a JWT (user or build scope) or a user's API token."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from pipelines.auth_tokens import Claims, InvalidToken, decode
from pipelines.models import Token
from pipelines.services import touch_token


class BuildPrincipal(AnonymousUser):
    """The caller is a build's launcher: it may act on its own build and nothing else."""

    def __init__(self, claims: Claims) -> None:
        super().__init__()
        self.claims = claims

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

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
        value = value.strip()
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
        if claims.is_build:
            return BuildPrincipal(claims), claims
        user = get_user_model().objects.filter(username=claims.username, is_active=True).first()
        if user is None:
            raise exceptions.AuthenticationFailed("The token's user no longer exists.")
        return user, claims

    def _from_api_token(self, value: str) -> tuple[Any, Token]:
        token = Token.objects.matching(value).select_related("user").first()
        if token is None or token.user is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("The API token is not valid: create a new one.")
        touch_token(token)
        return token.user, token
