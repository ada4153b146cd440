"""/v4/commands and /v4/validator/command: build commands that builds publish for `sd-cmd`."""

from __future__ import annotations

import json
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework import status as http
from rest_framework.request import Request
from rest_framework.response import Response

from pipelines.api.serializers import (
    CommandPublishSerializer,
    CommandSerializer,
    CommandTagSerializer,
    TemplateTagVersionSerializer,
    TemplateTrustedSerializer,
    TemplateYamlSerializer,
)
from pipelines.api.views.publishers import publisher_of, require_remover
from pipelines.command_selectors import (
    command_tags,
    command_versions,
    pick_command,
    search_commands,
)
from pipelines.config import ConfigError
from pipelines.config.command_spec import TAG, VERSION, check_spec, parse_spec
from pipelines.models import Command
from pipelines.services import (
    CommandInvalid,
    PipelineError,
    Publisher,
    publish_command,
    remove_command,
    remove_command_tag,
    set_command_trusted,
    tag_command,
)
from screwdriver_site.api.base import ApiView, paginate
from screwdriver_site.api.errors import error_response
from screwdriver_site.api.permissions import BUILD, PEOPLE, PIPELINE, USER
from screwdriver_site.outputs import read_chunks

BUILDS = frozenset({BUILD})
COMMAND_READERS = frozenset({USER, PIPELINE, BUILD})


def _publisher(request: Request) -> Publisher:
    return publisher_of(request, "command")


def _spec(text: str) -> Any:
    try:
        return parse_spec(text)
    except ConfigError as exc:
        raise PipelineError(f"The command spec is not valid YAML or JSON: {exc.message}.") from None


def _invalid(exc: CommandInvalid) -> Response:
    response = error_response(400, exc.message)
    response.data["errors"] = exc.errors
    return response


def _picked(namespace: str, name: str, version_or_tag: str) -> Command:
    if not (VERSION.match(version_or_tag) or TAG.match(version_or_tag)):
        raise PipelineError(
            f"{version_or_tag} is neither a version (1, 1.2, 1.2.3) nor a tag name."
        )
    command = pick_command(namespace, name, version_or_tag)
    if command is None:
        raise PipelineError(
            f"Command {namespace}/{name}@{version_or_tag} does not exist.", status=404
        )
    return command


class CommandListView(ApiView):
    scopes = {"GET": COMMAND_READERS, "POST": BUILDS}

    @extend_schema(responses={200: CommandSerializer(many=True)})
    def get(self, request: Request) -> Response:
        rows = search_commands(
            namespace=request.query_params.get("namespace") or None,
            search=request.query_params.get("search") or None,
        )
        page = paginate(request, rows, sort_by={"name": "name", "namespace": "namespace"})
        return Response(CommandSerializer(page, many=True).data)

    @extend_schema(request=CommandPublishSerializer, responses={201: CommandSerializer})
    def post(self, request: Request) -> Response:
        body = CommandPublishSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        upload = body.validated_data.get("file")
        try:
            command = publish_command(
                publisher=_publisher(request),
                spec=_spec(str(body.validated_data["spec"])),
                binary=upload,
                size=None if upload is None else upload.size,
            )
        except CommandInvalid as exc:
            return _invalid(exc)
        response = Response(CommandSerializer(command).data, status=http.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(
            f"/v4/commands/{command.namespace}/{command.name}/{command.version}"
        )
        return response


class CommandVersionsView(ApiView):
    scopes = {"GET": COMMAND_READERS, "DELETE": frozenset({USER, BUILD})}

    @extend_schema(responses={200: CommandSerializer(many=True)})
    def get(self, request: Request, namespace: str, name: str) -> Response:
        rows = paginate(request, command_versions(namespace, name).select_related("pipeline"))
        data = CommandSerializer(rows, many=True).data
        if not data:
            return error_response(404, f"Command {namespace}/{name} does not exist.")
        return Response(data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, namespace: str, name: str) -> Response:
        newest = command_versions(namespace, name).select_related("pipeline").first()
        if newest is None:
            return error_response(404, f"Command {namespace}/{name} does not exist.")
        require_remover(request, newest.pipeline, newest.full_name, "command")
        remove_command(namespace=namespace, name=name)
        return Response(status=http.HTTP_204_NO_CONTENT)


class CommandDetailView(ApiView):
    scopes = {"GET": COMMAND_READERS}

    @extend_schema(responses={200: CommandSerializer})
    def get(self, request: Request, namespace: str, name: str, version_or_tag: str) -> Response:
        return Response(CommandSerializer(_picked(namespace, name, version_or_tag)).data)


class CommandBinaryView(ApiView):
    scopes = {"GET": COMMAND_READERS}

    @extend_schema(responses={200: OpenApiTypes.BINARY})
    def get(
        self, request: Request, namespace: str, name: str, version_or_tag: str
    ) -> StreamingHttpResponse | Response:
        command = _picked(namespace, name, version_or_tag)
        if not command.binary_name:
            return error_response(
                404, f"Command {command} is a {command.format} command: it has no file."
            )
        response = StreamingHttpResponse(
            read_chunks(command.binary_name), content_type="application/octet-stream"
        )
        response["Content-Length"] = str(command.binary_size)
        response["X-Command-Version"] = command.version
        return response


class CommandTagsView(ApiView):
    scopes = {"GET": COMMAND_READERS}

    @extend_schema(responses={200: CommandTagSerializer(many=True)})
    def get(self, request: Request, namespace: str, name: str) -> Response:
        rows = paginate(request, command_tags(namespace, name))
        return Response(CommandTagSerializer(rows, many=True).data)


class CommandTagView(ApiView):
    scopes = {"PUT": BUILDS, "DELETE": BUILDS}

    @extend_schema(request=TemplateTagVersionSerializer, responses={200: CommandTagSerializer})
    def put(self, request: Request, namespace: str, name: str, tag: str) -> Response:
        body = TemplateTagVersionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        row, created = tag_command(
            publisher=_publisher(request),
            namespace=namespace,
            name=name,
            tag=tag,
            version=str(body.validated_data["version"]),
        )
        data = CommandTagSerializer(row).data
        return Response(data, status=http.HTTP_201_CREATED if created else http.HTTP_200_OK)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, namespace: str, name: str, tag: str) -> Response:
        remove_command_tag(publisher=_publisher(request), namespace=namespace, name=name, tag=tag)
        return Response(status=http.HTTP_204_NO_CONTENT)


class CommandTrustedView(ApiView):
    scopes = {"PUT": PEOPLE}

    @extend_schema(request=TemplateTrustedSerializer, responses={204: None})
    def put(self, request: Request, namespace: str, name: str) -> Response:
        if not request.user.is_superuser:
            raise exceptions.PermissionDenied("Only a server admin can mark a command trusted.")
        body = TemplateTrustedSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        set_command_trusted(
            namespace=namespace, name=name, trusted=bool(body.validated_data["trusted"])
        )
        return Response(status=http.HTTP_204_NO_CONTENT)


class CommandValidatorView(ApiView):
    scopes = {"POST": COMMAND_READERS}

    @extend_schema(request=TemplateYamlSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        body = TemplateYamlSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        spec = _spec(str(body.validated_data["yaml"]))
        # Screwdriver answers with the parsed command and the errors (an empty list when valid).
        return Response({"command": json.loads(json.dumps(spec)), "errors": check_spec(spec)})
