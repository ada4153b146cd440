"""/v4/secrets, a pipeline's secrets and tokens, and a person's own API tokens.

Secret values are write-only: no response carries one (only a build's launcher gets them,
through /v4/builds/{id}/launch and /v4/builds/{id}/secrets). A token's value appears once,
in the answer to its creation or refresh; only its hash is stored.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status as http
from rest_framework.request import Request
from rest_framework.response import Response

from pipelines.api.serializers import (
    DeployKeySerializer,
    NewTokenSerializer,
    SecretCreateSerializer,
    SecretSerializer,
    SecretUpdateSerializer,
    TokenCreateSerializer,
    TokenSerializer,
    TokenUpdateSerializer,
)
from pipelines.models import DeployKey, Secret, Token
from pipelines.selectors import listed_secrets
from pipelines.services import (
    NewToken,
    create_pipeline_token,
    create_secret,
    create_user_token,
    delete_secret,
    delete_token,
    refresh_token,
    replace_deploy_key,
    update_secret,
    update_token,
)
from screwdriver_site.api.base import PAGING_PARAMETERS, ApiView, paginate, pipeline_for
from screwdriver_site.api.errors import error_response
from screwdriver_site.api.permissions import ADMIN, PEOPLE, PUSH, require_right, signed_in_user


def _new(new: NewToken) -> dict[str, Any]:
    return {**TokenSerializer(new.token).data, "value": new.value}


class PipelineSecretsView(ApiView):
    scopes = {"GET": PEOPLE}

    @extend_schema(parameters=PAGING_PARAMETERS, responses={200: SecretSerializer(many=True)})
    def get(self, request: Request, pipeline_id: int) -> Response:
        pipeline = pipeline_for(request, pipeline_id, PUSH)
        # A child's list holds the parent's secrets it inherits, as Screwdriver's does.
        rows = listed_secrets(pipeline)
        page = paginate(request, rows, sort_by={"name": "name"}, default_sort="ascending")
        return Response(SecretSerializer(page, many=True).data)


class PipelineDeployKeyView(ApiView):
    """A pipeline's SSH deploy key: its admins read the public half (to add it to the
    repository) and may replace the pair; the private half only reaches its builds' launchers."""

    scopes = {"GET": PEOPLE, "POST": PEOPLE}

    @extend_schema(responses={200: DeployKeySerializer})
    def get(self, request: Request, pipeline_id: int) -> Response:
        pipeline = pipeline_for(request, pipeline_id, ADMIN)
        key = DeployKey.objects.filter(pipeline=pipeline).select_related("pipeline").first()
        if key is None:
            return error_response(
                404,
                f"Pipeline {pipeline_id} has no deploy key: add `screwdriver.cd/useDeployKey: "
                "true` to the annotations of its screwdriver.yaml (the server must allow "
                "deploy keys: SD_DEPLOY_KEYS=true), then sync it.",
            )
        return Response(DeployKeySerializer(key).data)

    @extend_schema(request=None, responses={201: DeployKeySerializer})
    def post(self, request: Request, pipeline_id: int) -> Response:
        pipeline = pipeline_for(request, pipeline_id, ADMIN)
        if not pipeline.uses_deploy_key:
            return error_response(
                409,
                f"Pipeline {pipeline_id} does not clone with a deploy key: its screwdriver.yaml "
                "needs `screwdriver.cd/useDeployKey: true` and the server SD_DEPLOY_KEYS=true.",
            )
        key = replace_deploy_key(pipeline=pipeline)
        return Response(DeployKeySerializer(key).data, status=http.HTTP_201_CREATED)


class SecretCreateView(ApiView):
    scopes = {"POST": PEOPLE}

    @extend_schema(request=SecretCreateSerializer, responses={201: SecretSerializer})
    def post(self, request: Request) -> Response:
        body = SecretCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        pipeline = pipeline_for(request, data["pipelineId"], ADMIN)
        secret = create_secret(
            pipeline=pipeline, name=data["name"], value=data["value"], allow_in_pr=data["allowInPR"]
        )
        return Response(SecretSerializer(secret).data, status=http.HTTP_201_CREATED)


class SecretDetailView(ApiView):
    scopes = {"GET": PEOPLE, "PUT": PEOPLE, "DELETE": PEOPLE}

    def _secret(self, request: Request, secret_id: int, role: str) -> Secret:
        secret = get_object_or_404(Secret.objects.select_related("pipeline"), pk=secret_id)
        require_right(request, secret.pipeline, role)
        return secret

    @extend_schema(responses={200: SecretSerializer})
    def get(self, request: Request, secret_id: int) -> Response:
        return Response(SecretSerializer(self._secret(request, secret_id, PUSH)).data)

    @extend_schema(request=SecretUpdateSerializer, responses={200: SecretSerializer})
    def put(self, request: Request, secret_id: int) -> Response:
        secret = self._secret(request, secret_id, ADMIN)
        body = SecretUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        secret = update_secret(
            secret=secret,
            value=body.validated_data.get("value"),
            allow_in_pr=body.validated_data.get("allowInPR"),
        )
        return Response(SecretSerializer(secret).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, secret_id: int) -> Response:
        delete_secret(secret=self._secret(request, secret_id, ADMIN))
        return Response(status=http.HTTP_204_NO_CONTENT)


class PipelineTokensView(ApiView):
    scopes = {"GET": PEOPLE, "POST": PEOPLE}

    @extend_schema(parameters=PAGING_PARAMETERS, responses={200: TokenSerializer(many=True)})
    def get(self, request: Request, pipeline_id: int) -> Response:
        pipeline = pipeline_for(request, pipeline_id, ADMIN)
        page = paginate(request, Token.objects.filter(pipeline=pipeline), default_sort="ascending")
        return Response(TokenSerializer(page, many=True).data)

    @extend_schema(request=TokenCreateSerializer, responses={201: NewTokenSerializer})
    def post(self, request: Request, pipeline_id: int) -> Response:
        pipeline = pipeline_for(request, pipeline_id, ADMIN)
        body = TokenCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        new = create_pipeline_token(pipeline=pipeline, **body.validated_data)
        return Response(_new(new), status=http.HTTP_201_CREATED)


def _pipeline_token(request: Request, pipeline_id: int, token_id: int) -> Token:
    pipeline = pipeline_for(request, pipeline_id, ADMIN)
    return get_object_or_404(Token, pk=token_id, pipeline=pipeline)


def _user_token(request: Request, token_id: int) -> Token:
    # Someone else's token is not found, whoever asks.
    return get_object_or_404(Token, pk=token_id, user=signed_in_user(request))


class PipelineTokenDetailView(ApiView):
    scopes = {"PUT": PEOPLE, "DELETE": PEOPLE}

    @extend_schema(request=TokenUpdateSerializer, responses={200: TokenSerializer})
    def put(self, request: Request, pipeline_id: int, token_id: int) -> Response:
        token = _pipeline_token(request, pipeline_id, token_id)
        body = TokenUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        token = update_token(
            token=token,
            name=body.validated_data.get("name"),
            description=body.validated_data.get("description"),
        )
        return Response(TokenSerializer(token).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pipeline_id: int, token_id: int) -> Response:
        delete_token(token=_pipeline_token(request, pipeline_id, token_id))
        return Response(status=http.HTTP_204_NO_CONTENT)


class PipelineTokenRefreshView(ApiView):
    scopes = {"PUT": PEOPLE}

    @extend_schema(request=None, responses={200: NewTokenSerializer})
    def put(self, request: Request, pipeline_id: int, token_id: int) -> Response:
        return Response(_new(refresh_token(token=_pipeline_token(request, pipeline_id, token_id))))


class UserTokensView(ApiView):
    scopes = {"GET": PEOPLE, "POST": PEOPLE}

    @extend_schema(parameters=PAGING_PARAMETERS, responses={200: TokenSerializer(many=True)})
    def get(self, request: Request) -> Response:
        mine = Token.objects.filter(user=signed_in_user(request))
        return Response(
            TokenSerializer(paginate(request, mine, default_sort="ascending"), many=True).data
        )

    @extend_schema(request=TokenCreateSerializer, responses={201: NewTokenSerializer})
    def post(self, request: Request) -> Response:
        body = TokenCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        new = create_user_token(user=signed_in_user(request), **body.validated_data)
        return Response(_new(new), status=http.HTTP_201_CREATED)


class UserTokenDetailView(ApiView):
    """A person's own token; someone else's is not found, whoever asks."""

    scopes = {"PUT": PEOPLE, "DELETE": PEOPLE}

    @extend_schema(request=TokenUpdateSerializer, responses={200: TokenSerializer})
    def put(self, request: Request, token_id: int) -> Response:
        token = _user_token(request, token_id)
        body = TokenUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        token = update_token(
            token=token,
            name=body.validated_data.get("name"),
            description=body.validated_data.get("description"),
        )
        return Response(TokenSerializer(token).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, token_id: int) -> Response:
        delete_token(token=_user_token(request, token_id))
        return Response(status=http.HTTP_204_NO_CONTENT)


class UserTokenRefreshView(ApiView):
    scopes = {"PUT": PEOPLE}

    @extend_schema(request=None, responses={200: NewTokenSerializer})
    def put(self, request: Request, token_id: int) -> Response:
        return Response(_new(refresh_token(token=_user_token(request, token_id))))
