"""The routes a build's launcher publishes $SD_ARTIFACTS_DIR through (docs/artifacts.md).

Only the build's own token may upload, and only while the build runs. The body is the file's
raw bytes, streamed to storage (never `request.body`, never DRF's parsers): the size of an
upload is bounded by the artifact caps, not by DATA_UPLOAD_MAX_MEMORY_SIZE.
"""

from __future__ import annotations

import io
from typing import IO

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status as http
from rest_framework.request import Request
from rest_framework.response import Response

from builds import artifacts
from builds.api.artifacts import BuildArtifactView
from screwdriver_site.api.base import ApiView
from screwdriver_site.api.errors import error_response
from screwdriver_site.api.permissions import BUILD, require_build_token

_UPLOAD = {"application/octet-stream": OpenApiTypes.BINARY}


def _body(request: Request) -> IO[bytes]:
    # DRF's stream is the Django request itself (read in chunks); None for an empty body.
    return request.stream or io.BytesIO()


def _content_length(request: Request) -> int | None:
    raw = request.META.get("CONTENT_LENGTH")
    if raw is None or str(raw).strip() == "":
        return None
    try:
        return int(raw)
    except ValueError:
        return -1


class ArtifactUploadView(ApiView):
    """PUT /v4/builds/{id}/artifacts/{path}: one file of the build's artifacts."""

    scopes = {"PUT": frozenset({BUILD})}
    # An ended build's token reaches the service, which answers 409 (not the scope's 403).
    teardown_reporting = frozenset({"PUT"})
    parser_classes: list[type] = []

    @extend_schema(request=_UPLOAD, responses={201: OpenApiTypes.OBJECT})
    def put(self, request: Request, build_id: int, artifact_path: str) -> Response:
        require_build_token(request, build_id)
        try:
            artifact = artifacts.receive_artifact(
                build_id=build_id,
                path=artifact_path,
                body=_body(request),
                length=_content_length(request),
            )
        except artifacts.ArtifactUploadError as exc:
            return error_response(exc.status, exc.message)
        return Response(
            {"path": artifact.path, "size": artifact.size, "sha256": artifact.sha256},
            status=http.HTTP_201_CREATED,
        )


class ArtifactZipUploadView(ApiView):
    """PUT /v4/builds/{id}/artifacts.zip: a zip the server expands into the build's artifacts."""

    scopes = {"PUT": frozenset({BUILD})}
    teardown_reporting = frozenset({"PUT"})
    parser_classes: list[type] = []

    @extend_schema(
        operation_id="builds_artifacts_zip_update",
        request=_UPLOAD,  # the zip's bytes, whatever type the client names
        responses={201: OpenApiTypes.OBJECT},
    )
    def put(self, request: Request, build_id: int) -> Response:
        require_build_token(request, build_id)
        try:
            stored = artifacts.receive_artifact_zip(
                build_id=build_id, body=_body(request), length=_content_length(request)
            )
        except artifacts.ArtifactUploadError as exc:
            return error_response(exc.status, exc.message)
        return Response(
            {"files": len(stored), "size": sum(item.size for item in stored)},
            status=http.HTTP_201_CREATED,
        )


class ArtifactView(BuildArtifactView, ArtifactUploadView):
    """One path of a build's artifacts: read as the logs are (GET), written by the build (PUT)."""

    scopes = {**BuildArtifactView.scopes, **ArtifactUploadView.scopes}
    teardown_reporting = ArtifactUploadView.teardown_reporting
    parser_classes: list[type] = []
