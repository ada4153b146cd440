"""Status, versions, the validator and Screwdriver's /auth routes."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, logout
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from pipelines.api.serializers import (
    LoginSerializer,
    TokenResponseSerializer,
    ValidatorSerializer,
    scm_context_of,
)
from pipelines.config import parse_pipeline_yaml
from pipelines.config.jsvalues import holds_lone_surrogate
from pipelines.models import Token
from pipelines.services import touch_token
from pipelines.template_store import database_pipeline_templates, database_templates
from screwdriver_site.api.authentication import GuestPrincipal, PipelinePrincipal
from screwdriver_site.api.base import ApiView
from screwdriver_site.api.errors import error_response
from screwdriver_site.api.permissions import BUILD, GUEST, PIPELINE, USER, kind_of
from screwdriver_site.api.tokens import issue_user_token
from screwdriver_site.tokens import issue_guest_token, issue_pipeline_token

PACKAGES = ["Django", "djangorestframework", "django-q2", "channels", "PyJWT"]


class StatusView(ApiView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(responses={200: OpenApiTypes.STR}, auth=[])
    def get(self, request: Request) -> Response:
        return Response("OK")


class VersionsView(ApiView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, auth=[])
    def get(self, request: Request) -> Response:
        versions = [f"screwdriver-py@{_version('screwdriver-py') or '0.1.0'}"]
        versions += [f"{name}@{_version(name)}" for name in PACKAGES if _version(name)]
        return Response({"versions": versions, "licenses": []})


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


def _token_for_user(user: Any) -> Response:
    token = issue_user_token(username=user.get_username(), is_admin=user.is_superuser)
    return Response({"token": token})


class AuthTokenView(ApiView):
    """GET /v4/auth/token: exchange an API token for a JWT, or refresh the caller's own."""

    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[OpenApiParameter("api_token", OpenApiTypes.STR)],
        responses={200: TokenResponseSerializer},
    )
    def get(self, request: Request) -> Response:
        api_token = request.query_params.get("api_token")
        if api_token:
            token = Token.objects.matching(api_token).select_related("user").first()
            if token is None or (token.user is not None and not token.user.is_active):
                return error_response(401, "The API token is not valid: create a new one.")
            touch_token(token)
            if token.user is None:
                return Response(
                    {"token": issue_pipeline_token(pipeline_id=int(token.pipeline_id or 0))}
                )
            return _token_for_user(token.user)
        kind = kind_of(request)
        if kind == USER:
            return _token_for_user(request.user)
        if kind == GUEST:
            return Response({"token": issue_guest_token()})
        if isinstance(request.user, PipelinePrincipal):
            return Response(
                {"token": issue_pipeline_token(pipeline_id=int(request.user.pipeline_id or 0))}
            )
        if kind is None:
            return error_response(401, "Sign in or pass api_token to get a token.")
        return error_response(
            403, "A build token cannot be exchanged here: use /v4/builds/{id}/token."
        )


class AuthLoginView(ApiView):
    """POST /v4/auth/login: a local account's username and password for a JWT."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(request=LoginSerializer, responses={200: TokenResponseSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        body = LoginSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = authenticate(
            request._request,
            username=body.validated_data["username"],
            password=body.validated_data["password"],
        )
        if user is None or not user.is_active:
            return error_response(401, "The username or password is wrong.")
        return _token_for_user(user)


class GuestLoginView(ApiView):
    """/v4/auth/login/guest: a guest JWT, while the server allows guests."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(request=None, responses={200: TokenResponseSerializer}, auth=[])
    def get(self, request: Request) -> Response:
        if not settings.SD_GUEST_ACCESS:
            return error_response(403, "Guest access is off on this server: sign in instead.")
        return Response({"token": issue_guest_token()})

    @extend_schema(request=None, responses={200: TokenResponseSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        return self.get(request)


class AuthLogoutView(ApiView):
    """POST /v4/auth/logout: ends the session and refuses every JWT the person holds.

    Django's sign-out signal moves the person's sign-in generation on (pipelines.apps).
    """

    scopes = {"POST": frozenset({USER, GUEST})}

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        if isinstance(request.user, GuestPrincipal):
            return Response({})
        logout(request._request)
        return Response({})


class AuthContextsView(ApiView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(
        responses={
            200: inline_serializer(
                "AuthContext",
                {
                    "context": serializers.CharField(),
                    "displayName": serializers.CharField(),
                    "autoDeployKeyGeneration": serializers.BooleanField(),
                    "readOnly": serializers.BooleanField(),
                },
                many=True,
            )
        },
        auth=[],
    )
    def get(self, request: Request) -> Response:
        contexts = [
            {
                "context": scm_context_of("local"),
                "displayName": "Local accounts",
                "autoDeployKeyGeneration": False,
                "readOnly": False,
            }
        ]
        if settings.SD_GUEST_ACCESS:
            contexts.append(
                {
                    "context": "guest",
                    "displayName": "Guest",
                    "autoDeployKeyGeneration": False,
                    "readOnly": True,
                }
            )
        return Response(contexts)


class ValidatorView(ApiView):
    scopes = {"POST": frozenset({USER, PIPELINE, BUILD})}

    @extend_schema(request=ValidatorSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        yaml_text = request.data.get("yaml") if isinstance(request.data, dict) else None
        if not isinstance(yaml_text, str):
            return error_response(400, "Send the file as a string in the yaml field.")
        if holds_lone_surrogate(yaml_text):
            return error_response(400, "The file is not valid Unicode: fix its encoding.")
        result = parse_pipeline_yaml(
            yaml_text, templates=database_templates, pipeline_templates=database_pipeline_templates
        )
        # A YAML escape like "\ud800" parses to text no response can carry.
        if holds_lone_surrogate(result):
            return error_response(
                400, "The file spells a lone UTF-16 surrogate (like \\ud800): remove it."
            )
        return Response(result)
