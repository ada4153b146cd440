"""GET /v4/builds/{id}/artifacts[/{path}]: read a build's files, as its logs are read.

The rights are those of the build's logs: pull on the pipeline, or the build's own token.
What is served inline and how is builds.artifact_responses' decision.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from builds.artifact_reads import FolderEntry, artifacts_under, folder_entries, rows_of
from builds.artifact_responses import ArtifactFileMissing, file_response, zip_response
from builds.artifacts import ArtifactPathError, artifact_at, check_artifact_path
from builds.models import Build
from pipelines.api.serializers import CompactSerializer, ScrewdriverTime
from screwdriver_site.api.base import ApiView, build_for, choice_param
from screwdriver_site.api.permissions import PULL, READERS

TYPE_PARAMETER = OpenApiParameter(
    "type",
    OpenApiTypes.STR,
    enum=["download", "preview"],
    description="download: an attachment; preview (default): shown inline when that is safe.",
)
DIR_PARAMETER = OpenApiParameter(
    "dir",
    OpenApiTypes.BOOL,
    description="The path is a folder: its listing (JSON), or with type=download its zip.",
)
FILE = OpenApiResponse(OpenApiTypes.BINARY, description="The file, whole or one byte range.")
ZIP = OpenApiResponse(OpenApiTypes.BINARY, description="A zip of the files, streamed.")


def _dir_param(request: Request) -> bool:
    raw = request.query_params.get("dir", "")
    if raw.lower() not in ("", "true", "false"):
        raise ValidationError("dir must be true or false.")
    return raw.lower() == "true"


class ArtifactEntrySerializer(CompactSerializer):
    """One entry of a folder's listing: a directory (with its file count) or a file."""

    name = serializers.CharField()
    path = serializers.CharField()
    type = serializers.SerializerMethodField()
    size = serializers.IntegerField()
    files = serializers.SerializerMethodField()
    contentType = serializers.CharField(source="row.content_type", default=None)
    sha256 = serializers.CharField(source="row.sha256", default=None)
    createTime = ScrewdriverTime(source="row.created_at", default=None)

    def get_type(self, entry: FolderEntry) -> str:
        return "directory" if entry.is_folder else "file"

    def get_files(self, entry: FolderEntry) -> int | None:
        return entry.files if entry.is_folder else None


LISTING = OpenApiResponse(
    ArtifactEntrySerializer(many=True),
    description="With dir=true: a folder's folders, then its files.",
)


def _listing(build: Build, folder: str) -> Response:
    entries = folder_entries(rows_of(build), folder)
    if entries is None:
        if not folder:
            return Response([])
        raise NotFound(f"Build {build.pk} has no folder {folder!r} among its artifacts.")
    return Response(ArtifactEntrySerializer(entries, many=True).data)


class BuildArtifactsView(ApiView):
    """All of a build's artifacts: a zip, or with dir=true the listing of the top folder."""

    scopes = {"GET": READERS}

    @extend_schema(
        parameters=[DIR_PARAMETER, TYPE_PARAMETER],
        responses={(200, "application/zip"): ZIP, (200, "application/json"): LISTING},
        operation_id="build_artifacts_zip",
    )
    def get(self, request: Request, build_id: int) -> Any:
        build = build_for(request, build_id, PULL)
        as_type = choice_param(request, "type", ["download", "preview"], None)
        if _dir_param(request) and as_type != "download":
            return _listing(build, "")
        head = request.method == "HEAD"
        return zip_response(build, artifacts_under(build, ""), folder="", head=head)


class BuildArtifactView(ApiView):
    """One artifact (download or preview, with ranges), or a folder's listing or zip."""

    scopes = {"GET": READERS}

    @extend_schema(
        parameters=[TYPE_PARAMETER, DIR_PARAMETER],
        responses={
            (200, "application/octet-stream"): FILE,
            (206, "application/octet-stream"): FILE,
            (200, "application/zip"): ZIP,
            (200, "application/json"): LISTING,
            (416, "application/json"): OpenApiTypes.OBJECT,
        },
        operation_id="build_artifact_read",
    )
    def get(self, request: Request, build_id: int, artifact_path: str) -> Any:
        build = build_for(request, build_id, PULL)
        as_type = choice_param(request, "type", ["download", "preview"], "preview")
        try:
            path = check_artifact_path(artifact_path)
        except ArtifactPathError as error:
            raise ValidationError(str(error)) from None
        if _dir_param(request):
            if as_type != "download":
                return _listing(build, path)
            artifacts = artifacts_under(build, path)
            if not artifacts:
                raise NotFound(f"Build {build.pk} has no folder {path!r} among its artifacts.")
            return zip_response(build, artifacts, folder=path, head=request.method == "HEAD")
        artifact = artifact_at(build, path)
        if artifact is None:
            hint = " (a folder: add dir=true)" if artifacts_under(build, path) else ""
            raise NotFound(f"Build {build.pk} has no artifact {path!r}{hint}.")
        try:
            return file_response(
                artifact,
                as_type=str(as_type),
                headers=request.headers,
                head=request.method == "HEAD",
            )
        except ArtifactFileMissing:
            raise NotFound(
                f"The stored file of artifact {path!r} of build {build.pk} is missing."
            ) from None
