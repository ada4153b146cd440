"""Build caches over /v4: a launcher restores and saves its build's caches, and a pipeline's
admins clear them (Screwdriver's `DELETE /pipelines/{id}/caches?scope=&cacheId=`).

GET/HEAD/PUT /v4/builds/{id}/caches/{scope}/{name}: the build's own token only, while the
build runs; `scope` is pipeline, event or job (or the plural), `name` the path as the job's
screwdriver.yaml writes it, URL-encoded. The server finds the pipeline, event or job from the
build, so a build can only reach its own.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.http import Http404, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from builds import caches
from builds.models import Build, Cache
from pipelines.models import Pipeline
from screwdriver_site.api.base import ApiView, build_for
from screwdriver_site.api.errors import error_response
from screwdriver_site.api.permissions import (
    ADMIN,
    BUILD,
    PEOPLE,
    PULL,
    has_right,
    require_build_token,
    require_right,
)
from screwdriver_site.outputs import read_chunks
from screwdriver_site.streaming import ChunkedResponse

DIGEST_HEADER = "X-Cache-Digest"
LAUNCHERS = frozenset({BUILD})


def _request(request: Request, build_id: int, scope: str, name: str) -> tuple[Build, str]:
    require_build_token(request, build_id)
    build = build_for(request, build_id, PULL)
    found = caches.scope_named(scope)
    if found is None:
        raise caches.CacheError("The scope must be pipeline, event or job.", 400)
    if not name or len(name.encode("utf-8", "surrogateescape")) > caches.MAX_NAME_BYTES:
        raise caches.CacheError(
            f"A cache name is a path of 1 to {caches.MAX_NAME_BYTES} bytes.", 400
        )
    return build, found


def _headers(response: HttpResponseBase, cache: Cache) -> HttpResponseBase:
    response[DIGEST_HEADER] = cache.digest
    response["Content-Length"] = str(cache.size)
    response["Last-Modified"] = cache.updated_at.strftime("%a, %d %b %Y %H:%M:%S GMT")
    return response


class BuildCacheView(ApiView):
    """A build's cache, for its own launcher: GET restores it, HEAD gives its digest, PUT saves
    it (docs/launcher-protocol.md)."""

    scopes = {"GET": LAUNCHERS, "PUT": LAUNCHERS}

    @extend_schema(
        responses={
            (200, "application/gzip"): OpenApiResponse(OpenApiTypes.BINARY, "a tar.gz archive"),
            404: OpenApiResponse(description="no such cache yet"),
        }
    )
    def get(self, request: Request, build_id: int, scope: str, name: str) -> HttpResponseBase:
        try:
            build, found = _request(request, build_id, scope, name)
            cache = caches.find_cache(build, found, name)
        except caches.CacheError as exc:
            return error_response(exc.status, exc.message)
        if cache is None:
            return error_response(404, f"There is no {scope} cache {name!r} yet.")
        if request.method == "HEAD":
            return _headers(HttpResponse(content_type="application/gzip"), cache)
        chunks = read_chunks(cache.storage_name)
        try:
            # Opened now: an archive that went missing is a 404, not a broken 200.
            first = next(chunks, b"")
        except Exception as exc:
            if _is_missing(exc):
                return error_response(404, f"There is no {scope} cache {name!r} yet.")
            raise
        caches.mark_read(cache)
        # ChunkedResponse: under ASGI a plain StreamingHttpResponse is read whole first.
        response = ChunkedResponse(_then(first, chunks), content_type="application/gzip")
        return _headers(response, cache)

    @extend_schema(
        request={"application/octet-stream": OpenApiTypes.BINARY},
        parameters=[
            OpenApiParameter(
                DIGEST_HEADER,
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="sha256 of the files (the launcher's digest), 64 hex digits",
            )
        ],
        responses={202: OpenApiTypes.OBJECT, 413: OpenApiTypes.OBJECT},
    )
    def put(self, request: Request, build_id: int, scope: str, name: str) -> Response:
        try:
            build, found = _request(request, build_id, scope, name)
            length = _content_length(request)
            cache = caches.store_cache(
                build=build,
                scope=found,
                name=name,
                source=request.stream or _Empty(),
                length=length,
                digest=request.headers.get(DIGEST_HEADER, ""),
            )
        except caches.CacheError as exc:
            return error_response(exc.status, exc.message)
        return Response(
            {"scope": cache.scope, "name": cache.name, "size": cache.size, "digest": cache.digest},
            status=202,
        )


class _Empty:
    def read(self, size: int = -1) -> bytes:
        return b""


def _content_length(request: Request) -> int:
    raw = request.META.get("CONTENT_LENGTH") or ""
    if not raw.isdigit():
        raise caches.CacheError("Send the archive with a Content-Length.", 411)
    return int(raw)


def _then(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _is_missing(exc: BaseException) -> bool:
    """Whether reading an archive failed because it is not there (a folder's or S3's way)."""
    if isinstance(exc, FileNotFoundError):
        return True
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    return isinstance(error, dict) and error.get("Code") in {"NoSuchKey", "404"}


class PipelineCachesView(ApiView):
    """DELETE /v4/pipelines/{id}/caches?scope=pipelines|events|jobs&cacheId=N."""

    scopes = {"DELETE": PEOPLE}

    @extend_schema(
        parameters=[
            OpenApiParameter("scope", OpenApiTypes.STR, enum=["pipelines", "events", "jobs"]),
            OpenApiParameter(
                "cacheId", OpenApiTypes.INT, description="the pipeline, event or job id"
            ),
        ],
        responses={204: None},
    )
    def delete(self, request: Request, pipeline_id: int) -> Response:
        pipeline = get_object_or_404(Pipeline, pk=pipeline_id)
        if not has_right(request, pipeline, PULL):
            raise Http404(f"Pipeline {pipeline_id} does not exist.")
        require_right(request, pipeline, ADMIN)
        scope = request.query_params.get("scope", "")
        raw_id = request.query_params.get("cacheId", "")
        if scope not in caches.KEY_OF_SCOPE:
            return error_response(400, "scope must be pipelines, events or jobs.")
        if not raw_id.isdigit() or not 0 < int(raw_id) < 2**63:
            return error_response(400, "cacheId must be the id of the pipeline, an event or a job.")
        try:
            caches.clear_scope(pipeline=pipeline, scope=scope, scope_id=int(raw_id))
        except caches.CacheError as exc:
            return error_response(exc.status, exc.message)
        return Response(status=204)
