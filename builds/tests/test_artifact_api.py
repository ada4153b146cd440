"""GET /v4/builds/{id}/artifacts[/{path}]: who may read, the bytes (whole, ranges, zips) from
either storage, folder listings, what is shown inline, and memory that a file's size does not
move."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import io
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from builds.artifact_reads import artifacts_under
from builds.artifact_responses import zip_response
from builds.artifacts import store_artifact
from builds.models import Artifact, Build, Step
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml
from screwdriver_site.outputs import outputs
from screwdriver_site.tokens import issue_build_token

pytestmark = pytest.mark.django_db

YAML = """\
jobs:
  main:
    image: node:22
    requires: [~commit]
    steps:
      - a: echo a
"""
# Bytes that are no text: every value, and more than one chunk of the storage's reads.
BINARY = bytes(range(256)) * 1200 + b"tail"


def make_build(owner: User, *, private: bool = True, name: str = "local/app") -> Build:
    pipeline = pipeline_from_yaml(YAML, owner=owner, private=private, name=name)
    return Build.objects.get(event=event_from_yaml(pipeline, YAML))


@pytest.fixture
def build(owner: User) -> Build:
    """A build of alice's private pipeline."""
    return make_build(owner)


@pytest.fixture(params=["folder", "s3"])
def storage_kind(request: pytest.FixtureRequest, outputs_folder: Path) -> str:
    if request.param == "s3":
        request.getfixturevalue("s3_outputs")
    return str(request.param)


def store(build: Build, path: str, data: bytes) -> Artifact:
    return store_artifact(build, path, io.BytesIO(data))


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def as_owner(build: Build) -> Client:
    """alice, who made the build's pipeline, signed in."""
    creator = build.job.pipeline.creator
    assert creator is not None
    return signed_in(creator)


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def url(build: Build, path: str = "", query: str = "") -> str:
    base = f"/v4/builds/{build.pk}/artifacts" + (f"/{path}" if path else "")
    return f"{base}?{query}" if query else base


# --- who may read ----------------------------------------------------------------------------


READS = [("", ""), ("", "dir=true"), ("report/a.txt", ""), ("report", "dir=true")]


def test_artifacts_are_read_with_the_rights_of_the_logs(
    build: Build, owner: User, member: User, outsider: User
) -> None:
    store(build, "report/a.txt", b"hello")
    other = make_build(owner, private=False, name="local/other")
    step = Step.objects.filter(build=build).values_list("name", flat=True).first()
    personas: dict[str, tuple[Any, int]] = {
        "owner": (signed_in(owner), 200),
        "member": (signed_in(member), 403),
        # carol's account was disabled: her session no longer signs her in.
        "outsider": (signed_in(outsider), 401),
        "anonymous": (Client(), 401),
        "another build's token": (_bearer(issue_build_token(other)), 403),
    }
    for persona, (client, expected) in personas.items():
        logs = client.get(f"/v4/builds/{build.pk}/steps/{step}/logs").status_code
        assert logs == expected, persona
        for path, query in READS:
            response = client.get(url(build, path, query))
            assert response.status_code == logs, (persona, path, query, body(response))
            if logs != 200:
                assert b"hello" not in body(response)


def _bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_a_build_token_and_anyone_signed_in_read_a_public_pipelines_artifacts(
    owner: User, member: User
) -> None:
    public = make_build(owner, private=False)
    store(public, "a.txt", b"hello")
    assert body(_bearer(issue_build_token(public)).get(url(public, "a.txt"))) == b"hello"
    assert body(signed_in(member).get(url(public, "a.txt"))) == b"hello"


# --- bytes -----------------------------------------------------------------------------------


def test_a_download_is_the_stored_file_byte_for_byte(build: Build, storage_kind: str) -> None:
    store(build, "dist/app.bin", BINARY)

    response = as_owner(build).get(url(build, "dist/app.bin", "type=download"))

    assert response.status_code == 200
    assert response.streaming
    assert body(response) == BINARY
    assert response["Content-Length"] == str(len(BINARY))
    assert response["ETag"] == f'"{hashlib.sha256(BINARY).hexdigest()}"'
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == 'attachment; filename="app.bin"'
    assert response["X-Content-Type-Options"] == "nosniff"


RANGES = [
    ("bytes=0-9", 0, 10),
    ("bytes=300000-300099", 300_000, 300_100),  # past the first chunk of a read
    ("bytes=-100", len(BINARY) - 100, len(BINARY)),
    ("bytes=300000-", 300_000, len(BINARY)),
    ("bytes=5-99999999", 5, len(BINARY)),
]


def test_a_range_is_answered_with_those_bytes_only(build: Build, storage_kind: str) -> None:
    store(build, "app.bin", BINARY)
    client = as_owner(build)

    for header, start, end in RANGES:
        response = client.get(url(build, "app.bin"), HTTP_RANGE=header)

        assert response.status_code == 206, header
        assert body(response) == BINARY[start:end], header
        assert response["Content-Range"] == f"bytes {start}-{end - 1}/{len(BINARY)}"
        assert response["Content-Length"] == str(end - start)


def test_a_range_past_the_end_is_416(build: Build) -> None:
    store(build, "app.bin", BINARY)
    client = as_owner(build)

    for header in [f"bytes={len(BINARY)}-", "bytes=99999999-99999999", "bytes=-0"]:
        response = client.get(url(build, "app.bin"), HTTP_RANGE=header)

        assert response.status_code == 416, header
        assert response["Content-Range"] == f"bytes */{len(BINARY)}"
        assert response.json()["statusCode"] == 416


def test_a_range_this_server_does_not_serve_gets_the_whole_file(build: Build) -> None:
    store(build, "app.bin", BINARY)
    client = as_owner(build)

    for header in ["bytes=0-1,5-6", "items=0-1", "bytes=9-2", "bytes=x-"]:
        response = client.get(url(build, "app.bin"), HTTP_RANGE=header)

        assert response.status_code == 200, header
        assert body(response) == BINARY


def test_etags_answer_304_and_a_stale_if_range_gets_the_whole_file(build: Build) -> None:
    artifact = store(build, "app.bin", BINARY)
    client = as_owner(build)
    etag = f'"{artifact.sha256}"'

    assert client.get(url(build, "app.bin"), HTTP_IF_NONE_MATCH=etag).status_code == 304
    fresh = client.get(url(build, "app.bin"), HTTP_RANGE="bytes=0-3", HTTP_IF_RANGE=etag)
    assert (fresh.status_code, body(fresh)) == (206, BINARY[:4])
    stale = client.get(url(build, "app.bin"), HTTP_RANGE="bytes=0-3", HTTP_IF_RANGE='"old"')
    assert (stale.status_code, body(stale)) == (200, BINARY)


def test_head_answers_the_headers_without_reading_the_bytes(build: Build) -> None:
    store(build, "app.bin", BINARY)
    client = as_owner(build)
    # Not one byte is read: a file the storage lost still answers HEAD.
    outputs().delete(f"artifacts/{build.pk}/app.bin")

    response = client.head(url(build, "app.bin"))
    # The test client drops a HEAD answer's body itself: ask the zip's maker directly.
    archive: Any = zip_response(build, artifacts_under(build, ""), folder="", head=True)

    assert response.status_code == 200
    assert response["Content-Length"] == str(len(BINARY))
    assert client.head(url(build)).status_code == 200
    assert archive["Content-Type"] == "application/zip"
    assert list(archive.streaming_content) == []


def test_an_empty_file_downloads_empty_and_has_no_range(build: Build, storage_kind: str) -> None:
    store(build, "empty.txt", b"")
    client = as_owner(build)

    whole = client.get(url(build, "empty.txt"))
    assert (whole.status_code, body(whole), whole["Content-Length"]) == (200, b"", "0")
    assert client.get(url(build, "empty.txt"), HTTP_RANGE="bytes=0-").status_code == 416


# --- what is shown inline --------------------------------------------------------------------

PNG = bytes.fromhex("89504e470d0a1a0a") + b"\0" * 32


SHOWN = [
    ("out/build.log", b"<script>alert(1)</script>", "text/plain; charset=utf-8", True),
    ("coverage.json", b'{"a": 1}', "text/plain; charset=utf-8", True),
    ("feed.xml", b"<x:script xmlns:x='http://www.w3.org/1999/xhtml'/>", "text/plain", True),
    ("shot.png", PNG, "image/png", True),
    ("logo.svg", b"<svg onload='alert(1)'/>", "application/octet-stream", False),
    ("doc.pdf", b"%PDF-1.4", "application/octet-stream", False),
    ("app.tar.gz", BINARY, "application/octet-stream", False),
    ("page.xhtml", b"<html/>", "text/html; charset=utf-8", True),
]


def test_only_text_and_raster_images_are_shown_inline_everything_else_downloads(
    build: Build,
) -> None:
    client = as_owner(build)
    for path, data, content_type, inline in SHOWN:
        store(build, path, data)

        response = client.get(url(build, path, "type=preview"))

        assert response.status_code == 200
        assert response["Content-Type"].startswith(content_type), path
        assert response["Content-Disposition"].startswith("inline" if inline else "attachment")
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response["Content-Security-Policy"]
        assert body(response) == data


def test_an_html_report_is_inline_only_in_an_opaque_origin(build: Build) -> None:
    store(build, "report/index.html", b"<h1>report</h1>")
    client = as_owner(build)

    preview = client.get(url(build, "report/index.html"))
    download = client.get(url(build, "report/index.html", "type=download"))

    policy = [part.strip() for part in preview["Content-Security-Policy"].split(";")]
    # Scripts may run, but with no allow-same-origin they run in an origin of their own.
    assert policy[0] == "sandbox allow-scripts"
    assert not any("allow-same-origin" in part for part in policy)
    assert "frame-ancestors 'self'" in policy
    assert preview["X-Frame-Options"] == "SAMEORIGIN"
    assert preview["Content-Type"] == "text/html; charset=utf-8"
    assert preview["Content-Disposition"].startswith("inline")
    assert download["Content-Disposition"].startswith("attachment")
    assert download["Content-Type"] == "application/octet-stream"


def test_a_recorded_content_type_is_never_echoed_for_what_it_claims(build: Build) -> None:
    # Rows may come from an upload that names its own type; only the allowlist decides.
    store(build, "x.bin", b"<script>alert(1)</script>")
    Artifact.objects.filter(build=build).update(content_type="text/html\r\nX-Evil: 1")
    response = as_owner(build).get(url(build, "x.bin"))
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert "X-Evil" not in response


# --- zips and folders ------------------------------------------------------------------------

FILES = {
    "README.md": b"# read me\n" * 1000,
    "dist/app.bin": BINARY,
    "dist/empty": b"",
    "reports/index.html": b"<h1>report</h1>",
    "reports/deep/été.txt": "déjà vu\n".encode(),
}


def test_all_artifacts_stream_as_one_zip_that_holds_every_file(
    build: Build, storage_kind: str
) -> None:
    for path, data in FILES.items():
        store(build, path, data)

    response = as_owner(build).get(url(build))

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == (
        f'attachment; filename="build-{build.pk}-artifacts.zip"'
    )
    archive = zipfile.ZipFile(io.BytesIO(body(response)))
    assert archive.testzip() is None
    assert {name: archive.read(name) for name in archive.namelist()} == FILES


def test_a_folder_zips_under_its_own_name(build: Build) -> None:
    for path, data in FILES.items():
        store(build, path, data)

    response = as_owner(build).get(url(build, "reports", "dir=true&type=download"))

    assert response["Content-Disposition"] == 'attachment; filename="reports_dir.zip"'
    archive = zipfile.ZipFile(io.BytesIO(body(response)))
    assert sorted(archive.namelist()) == ["reports/deep/été.txt", "reports/index.html"]


def test_a_build_without_artifacts_zips_empty(build: Build) -> None:
    response = as_owner(build).get(url(build))
    assert zipfile.ZipFile(io.BytesIO(body(response))).namelist() == []


def test_a_file_lost_by_the_storage_is_left_out_of_the_zip(build: Build) -> None:
    store(build, "a.txt", b"a")
    store(build, "b.txt", b"b")
    outputs().delete(f"artifacts/{build.pk}/a.txt")

    response = as_owner(build).get(url(build))
    archive = zipfile.ZipFile(io.BytesIO(body(response)))

    assert archive.namelist() == ["b.txt"]


def test_a_folder_lists_its_folders_then_its_files(build: Build) -> None:
    for path, data in FILES.items():
        store(build, path, data)
    client = as_owner(build)

    top = client.get(url(build, query="dir=true")).json()
    reports = client.get(url(build, "reports/", "dir=true")).json()

    assert [(e["name"], e["type"]) for e in top] == [
        ("dist", "directory"),
        ("reports", "directory"),
        ("README.md", "file"),
    ]
    assert top[0] == {
        "name": "dist",
        "path": "dist",
        "type": "directory",
        "size": len(BINARY),
        "files": 2,
    }
    readme = top[2]
    assert readme["size"] == len(FILES["README.md"])
    assert readme["contentType"] == "text/markdown"
    assert readme["sha256"] == hashlib.sha256(FILES["README.md"]).hexdigest()
    assert readme["createTime"].endswith("Z")
    assert [e["path"] for e in reports] == ["reports/deep", "reports/index.html"]


def test_missing_paths_and_bad_parameters_are_4xx_with_a_message(build: Build) -> None:
    store(build, "reports/index.html", b"x")
    client = as_owner(build)

    cases = [
        (url(build, "nope.txt"), 404, "no artifact 'nope.txt'"),
        (url(build, "reports"), 404, "a folder: add dir=true"),
        (url(build, "nope", "dir=true"), 404, "no folder 'nope'"),
        (url(build, "nope", "dir=true&type=download"), 404, "no folder"),
        (url(build, "a/../../x"), 400, "may not leave"),
        (url(build, "reports/index.html", "type=raw"), 400, "type must be one of"),
        (url(build, "reports", "dir=maybe"), 400, "dir must be true or false"),
        (url(build, query="dir=true&type=raw"), 400, "type must be one of"),
        ("/v4/builds/999999/artifacts/a.txt", 404, ""),
    ]
    for address, status, words in cases:
        response = client.get(address)
        assert response.status_code == status, (address, response.content)
        assert words in response.json()["message"], response.json()


def test_a_file_lost_by_the_storage_is_a_404_that_says_so(build: Build) -> None:
    store(build, "a.txt", b"a")
    outputs().delete(f"artifacts/{build.pk}/a.txt")

    response = as_owner(build).get(url(build, "a.txt"))

    assert response.status_code == 404
    assert "missing" in response.json()["message"]


def test_a_file_lost_by_s3_is_a_404_too(build: Build, s3_outputs: str) -> None:
    store(build, "a.txt", b"a")
    outputs().delete(f"artifacts/{build.pk}/a.txt")
    assert as_owner(build).get(url(build, "a.txt")).status_code == 404


# --- memory ----------------------------------------------------------------------------------

BIG = 50 * 1024 * 1024


class _Zeros(io.RawIOBase):
    """`size` bytes of a file a build wrote, read without holding them."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def _peak_while(consume: Any, path: str) -> tuple[int, int]:
    """What `consume(path)` returned, and the most memory Python held at once meanwhile."""
    gc.collect()
    tracemalloc.start()
    try:
        total = consume(path)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return total, peak


@pytest.mark.slow  # a second: 50 MB written, then read three times
def test_serving_a_50_mb_file_holds_one_chunk_not_the_file(build: Build) -> None:
    store_artifact(build, "small.bin", io.BufferedReader(_Zeros(1024 * 1024)))
    client = as_owner(build)

    def through_wsgi(path: str) -> int:
        response: Any = client.get(url(build, path))
        return sum(len(chunk) for chunk in response.streaming_content)

    def through_asgi(path: str) -> int:
        # What Django's ASGI handler does with a streaming answer: `async for` over it.
        response: Any = client.get(url(build, path))

        async def drain() -> int:
            return sum([len(chunk) async for chunk in response])

        return asyncio.run(drain())

    def zipped(_path: str) -> int:
        response: Any = client.get(url(build))
        return sum(len(chunk) for chunk in response.streaming_content)

    small = {}
    for consume in (through_wsgi, through_asgi, zipped):
        consume("small.bin")  # first calls load code and fill caches: not what is measured
        small[consume.__name__] = _peak_while(consume, "small.bin")[1]
    store_artifact(build, "big.bin", io.BufferedReader(_Zeros(BIG)))
    for consume in (through_wsgi, through_asgi, zipped):
        total, peak = _peak_while(consume, "big.bin")
        assert total >= BIG
        # 50 times the bytes, the same memory: what is held is a chunk, never the file.
        assert peak < small[consume.__name__] + 1024 * 1024, consume.__name__


def test_odd_paths_and_headers_get_an_answer_never_a_server_error(build: Build) -> None:
    store(build, "a.txt", b"a")
    client = as_owner(build)
    paths = ["%00", "a%2F..%2F..%2Fetc%2Fpasswd", "./", "%FF%FE", "é/ü.txt", "x" * 5000,
             "a.txt%0A", "%5C..%5Cx"]  # fmt: skip
    for path in paths:
        for query in ("", "dir=true&type=download"):
            response = client.get(f"/v4/builds/{build.pk}/artifacts/{path}?{query}")
            assert response.status_code < 500, (path, query)
    for header in ["bytes=--1", "bytes=1-2-3", "bytes=99999999999999999999-", "bytes=-" + "9" * 40]:
        assert client.get(url(build, "a.txt"), HTTP_RANGE=header).status_code in (200, 206, 416)
