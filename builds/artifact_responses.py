"""HTTP answers for a build's artifacts: one file (whole or a byte range), or a zip of many.

How a file is served is decided here and nowhere else:

- `type=download`, and any file that is not safe to show: an attachment of
  `application/octet-stream`, whatever the build recorded as its type.
- a text file: `text/plain; charset=utf-8`, inline, so no markup in it is ever run.
- a raster image (not SVG): its own type, inline.
- an HTML report: `text/html`, inline, under a Content-Security-Policy whose `sandbox` runs it
  in an opaque origin: its scripts see no cookie of ours and call our API as nobody. Only our
  own pages may frame it.

Every answer carries `X-Content-Type-Options: nosniff` and a sandboxing policy of its own.

Under a capability address (builds.artifact_links), where a report loads the files beside it,
a stylesheet, a script, a font, SVG or JSON is served as its real type, chosen from its name
(REPORT_FILE_TYPES), so a browser that honours nosniff applies it; the rest as above, and HTML
only for a name that is HTML's. Those answers are never stored by the browser and send no
Referer, so the capability stays in the frame's address.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from http import HTTPStatus

from django.http import HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header, http_date

from builds.artifact_reads import kind_of, stored_chunks
from builds.artifacts import content_type_of
from builds.models import Artifact, Build
from screwdriver_site.streaming import (
    ChunkedResponse,
    Primed,
    RangeNotSatisfiable,
    etag_in,
    requested_range,
)
from screwdriver_site.zipstream import ZipMember, zip_stream

# An HTML report runs its own inline scripts and styles, and may load files beside it, but in
# an opaque origin: the `sandbox` token without allow-same-origin. Unlike our pages (see
# screwdriver_site.csp) it needs inline code, which the sandbox makes harmless to us.
REPORT_POLICY = (
    "sandbox allow-scripts; default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
# Anything else: nothing in it runs, even when a browser is sent to it directly.
FILE_POLICY = (
    "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
    "frame-ancestors 'self'"
)
# What a report may load from beside it, by its name's extension: each as its real type, so a
# browser that honours nosniff applies the style, runs the script or uses the font. None is HTML,
# and none runs anything when opened on its own (FILE_POLICY's sandbox, without allow-scripts).
REPORT_FILE_TYPES = {
    "css": "text/css; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "mjs": "text/javascript; charset=utf-8",
    "json": "application/json",
    "map": "application/json",
    "svg": "image/svg+xml",
    "woff": "font/woff",
    "woff2": "font/woff2",
    "ttf": "font/ttf",
    "otf": "font/otf",
}
# The only names served as HTML under a capability address.
REPORT_HTML = frozenset({"html", "htm", "xhtml"})
OCTET_STREAM = "application/octet-stream"
TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"
COMPRESSIBLE = frozenset({"text", "html"})


class ArtifactFileMissing(Exception):
    """The row of an artifact is there, its stored file is not."""


def _shown_as(artifact: Artifact, as_type: str) -> tuple[str, bool, str]:
    """The Content-Type, whether inline, and the policy a file is served with."""
    kind = kind_of(artifact.path, artifact.content_type)
    if as_type == "download" or kind == "binary":
        return OCTET_STREAM, False, FILE_POLICY
    if kind == "text":
        return TEXT, True, FILE_POLICY
    if kind == "html":
        return HTML, True, REPORT_POLICY
    return artifact.content_type.split(";", 1)[0].strip().lower(), True, FILE_POLICY


def _shown_in_report(artifact: Artifact) -> tuple[str, bool, str]:
    """The Content-Type, whether inline, and the policy of a file under a capability address.

    Decided from the file's name alone: its extension in REPORT_FILE_TYPES, else as a preview.
    """
    name = posixpath.basename(artifact.path).lower()
    _stem, dot, extension = name.rpartition(".")
    if dot and extension in REPORT_FILE_TYPES:
        return REPORT_FILE_TYPES[extension], True, FILE_POLICY
    kind = kind_of(artifact.path, content_type_of(artifact.path))
    if kind == "html" and extension in REPORT_HTML:
        return HTML, True, REPORT_POLICY
    if kind in ("text", "html"):
        # HTML by the platform's type table only (`.shtml`): shown as the text it is.
        return TEXT, True, FILE_POLICY
    if kind == "image":
        return content_type_of(artifact.path), True, FILE_POLICY
    return OCTET_STREAM, False, FILE_POLICY


def _protect(response: HttpResponseBase, policy: str) -> HttpResponseBase:
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = policy
    response["X-Frame-Options"] = "SAMEORIGIN"
    response["Cache-Control"] = "private, no-cache"
    return response


def protect_view(response: HttpResponseBase, policy: str = FILE_POLICY) -> HttpResponseBase:
    """The headers of every answer under a capability address (builds.artifact_links).

    Nothing is kept by the browser, and no Referer leaves with the capability in it. A report
    runs in an opaque origin, to which every file beside it is another origin's: fonts and
    module scripts load only with CORS, which `*` without credentials allows. It adds nothing
    to what the address alone gives, and no cookie of ours is ever taken on this route.
    """
    _protect(response, policy)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    response["Access-Control-Allow-Origin"] = "*"
    return response


def file_response(
    artifact: Artifact,
    *,
    as_type: str,
    headers: Mapping[str, str],
    head: bool = False,
    in_report: bool = False,
) -> HttpResponseBase:
    """The artifact's bytes as `as_type` (download or preview), honouring Range and ETags;
    `in_report` serves it under a capability address, as a report loads it.

    Raises ArtifactFileMissing when the storage has lost the file, before any byte is sent.
    """
    protect: Callable[[HttpResponseBase, str], HttpResponseBase]
    if in_report:
        content_type, inline, policy = _shown_in_report(artifact)
        protect = protect_view
    else:
        content_type, inline, policy = _shown_as(artifact, as_type)
        protect = _protect
    etag = f'"{artifact.sha256}"'
    if etag_in(headers.get("If-None-Match"), etag):
        not_modified = HttpResponse(status=HTTPStatus.NOT_MODIFIED)
        not_modified["ETag"] = etag
        return protect(not_modified, policy)
    wanted = headers.get("Range")
    if_range = headers.get("If-Range")
    if if_range is not None and if_range.strip() != etag:
        wanted = None  # the client's copy is another version: it gets the whole new one
    try:
        byte_range = requested_range(wanted, artifact.size)
    except RangeNotSatisfiable:
        refused = JsonResponse(
            {
                "statusCode": 416,
                "error": HTTPStatus(416).phrase,
                "message": f"{artifact.path} has {artifact.size} bytes: "
                f"the range {wanted} holds none of them.",
            },
            status=416,
        )
        refused["Content-Range"] = f"bytes */{artifact.size}"
        return protect(refused, policy)
    start, end = (0, artifact.size) if byte_range is None else (byte_range.start, byte_range.end)
    if head:
        body: Iterator[bytes] = iter(())
    else:
        try:
            body = Primed(stored_chunks(artifact, start, end))
        except FileNotFoundError:
            raise ArtifactFileMissing(artifact.path) from None
    response = ChunkedResponse(body, content_type=content_type)
    if byte_range is not None:
        response.status_code = HTTPStatus.PARTIAL_CONTENT
        response["Content-Range"] = byte_range.content_range
    response["Content-Length"] = str(end - start)
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    response["Last-Modified"] = http_date(artifact.created_at.timestamp())
    disposition = content_disposition_header(not inline, posixpath.basename(artifact.path))
    response["Content-Disposition"] = disposition or ("inline" if inline else "attachment")
    return protect(response, policy)


def zip_response(
    build: Build, artifacts: list[Artifact], *, folder: str, head: bool = False
) -> HttpResponseBase:
    """A zip of `artifacts`, streamed as it is written (for HEAD, its headers alone).

    The whole build's archive is named after the build and holds the paths as they are; a
    folder's (`dir=true`) is named after the folder and holds it as its top folder, as
    Screwdriver's does.
    """
    top = posixpath.basename(folder)
    cut = len(folder) - len(top)
    members = [
        ZipMember(
            name=artifact.path[cut:],
            size=artifact.size,
            modified=artifact.created_at,
            chunks=partial(stored_chunks, artifact),
            compress=kind_of(artifact.path, artifact.content_type) in COMPRESSIBLE,
        )
        for artifact in artifacts
    ]
    body = iter(()) if head else zip_stream(members)
    response = ChunkedResponse(body, content_type="application/zip")
    filename = f"{top}_dir.zip" if folder else f"build-{build.pk}-artifacts.zip"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return _protect(response, FILE_POLICY)
