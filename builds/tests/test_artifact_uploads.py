"""A build's launcher uploads its artifacts: its own token only, while it runs, within caps.

Every upload goes through the API as the launcher sends it (the raw bytes as the body); what
was stored is read back from the outputs storage, in a folder or in S3.
"""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from builds.artifacts import ArtifactUploadError, artifacts_of, receive_artifact
from builds.models import Artifact, Build
from builds.services import abort_build, mark_running
from pipelines.services import create_user_token
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml
from screwdriver_site.outputs import read_chunks
from screwdriver_site.tokens import issue_build_token, issue_pipeline_token

pytestmark = pytest.mark.django_db

YAML = """\
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - a: echo a
"""


def queued_build(owner: User, name: str = "local/app") -> Build:
    pipeline = pipeline_from_yaml(YAML, owner=owner, name=name)
    return Build.objects.get(event=event_from_yaml(pipeline, YAML))


@pytest.fixture
def build(owner: User) -> Build:
    return mark_running(build_id=queued_build(owner).pk)


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def launcher(build: Build) -> APIClient:
    return bearer(issue_build_token(build))


def put(client: APIClient, build: Build, path: str, data: bytes, **extra: Any) -> Any:
    return client.put(
        f"/v4/builds/{build.pk}/artifacts/{path}",
        data,
        content_type="application/octet-stream",
        **extra,
    )


def put_zip(client: APIClient, build: Build, data: bytes) -> Any:
    return client.put(f"/v4/builds/{build.pk}/artifacts.zip", data, content_type="application/zip")


def stored(build: Build) -> dict[str, bytes]:
    """What the storage holds for the build, by path, read through the rows."""
    return {a.path: b"".join(read_chunks(a.storage_name)) for a in artifacts_of(build)}


def no_files_under(folder: Path, build: Build) -> bool:
    root = folder / "artifacts" / str(build.pk)
    return not root.exists() or not any(p.is_file() for p in root.rglob("*"))


def zip_of(entries: dict[str, bytes], *, links: dict[str, str] | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return out.getvalue()


# --- one file at a time ----------------------------------------------------------------------


def test_the_launcher_uploads_a_file_and_gets_its_size_and_digest(
    build: Build, launcher: APIClient
) -> None:
    data = bytes(range(256)) * 1000
    response = put(launcher, build, "reports/deep/data.bin", data)
    assert response.status_code == 201, response.json()
    assert response.json() == {
        "path": "reports/deep/data.bin",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert stored(build) == {"reports/deep/data.bin": data}


def test_an_upload_of_the_same_path_replaces_the_file(build: Build, launcher: APIClient) -> None:
    assert put(launcher, build, "a.txt", b"first").status_code == 201
    assert put(launcher, build, "a.txt", b"second, longer").status_code == 201
    assert stored(build) == {"a.txt": b"second, longer"}


def test_an_empty_file_is_an_artifact_too(build: Build, launcher: APIClient) -> None:
    # Django's test client leaves Content-Length out of an empty body; HTTP clients send 0.
    assert put(launcher, build, "empty", b"", CONTENT_LENGTH="0").status_code == 201
    assert stored(build) == {"empty": b""}


def test_names_with_spaces_and_non_ascii_arrive_as_sent(build: Build, launcher: APIClient) -> None:
    response = put(launcher, build, "r%C3%A9sum%C3%A9%20final%3F.txt", b"x")
    assert response.status_code == 201, response.json()
    assert stored(build) == {"résumé final?.txt": b"x"}


def test_a_large_upload_is_not_limited_by_the_memory_cap_of_form_bodies(
    build: Build, launcher: APIClient, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    data = b"z" * 300_000
    assert put(launcher, build, "big.txt", data).status_code == 201
    assert stored(build) == {"big.txt": data}


# --- who may upload, and when ----------------------------------------------------------------


def test_another_builds_token_is_refused(build: Build, owner: User) -> None:
    other = mark_running(build_id=queued_build(owner, "local/other").pk)
    response = put(bearer(issue_build_token(other)), build, "a.txt", b"x")
    assert response.status_code == 403
    assert "its own build" in response.json()["message"]
    assert not Artifact.objects.exists()


@pytest.mark.parametrize("who", ["person", "pipeline", "anonymous"])
def test_only_a_build_token_may_upload(build: Build, owner: User, who: str) -> None:
    if who == "person":
        client = bearer(create_user_token(user=owner, name="cli").value)
    elif who == "pipeline":
        client = bearer(issue_pipeline_token(pipeline_id=build.job.pipeline_id))
    else:
        client = APIClient()
    response = put(client, build, "a.txt", b"x")
    assert response.status_code == (401 if who == "anonymous" else 403)
    assert not Artifact.objects.exists()


def test_a_finished_build_takes_no_upload(
    build: Build, launcher: APIClient, outputs_folder: Path
) -> None:
    abort_build(build_id=build.pk, message="Aborted by alice")
    response = put(launcher, build, "late.txt", b"x")
    assert response.status_code == 409
    assert "ABORTED" in response.json()["message"]
    assert not Artifact.objects.exists() and no_files_under(outputs_folder, build)


def test_a_build_that_has_not_started_takes_no_upload(owner: User) -> None:
    waiting = queued_build(owner)
    response = put(bearer(issue_build_token(waiting)), waiting, "early.txt", b"x")
    assert response.status_code == 409
    assert "QUEUED" in response.json()["message"]


@pytest.mark.parametrize(
    "path",
    ["%2E%2E/escape.txt", "a/%2E%2E/%2E%2E/escape.txt", "%2Fetc%2Fpasswd", "a%09b", "a%5Cb"],
)
def test_a_path_outside_the_artifacts_folder_is_a_400(
    build: Build, launcher: APIClient, outputs_folder: Path, path: str
) -> None:
    response = put(launcher, build, path, b"x")
    assert response.status_code == 400, response.json()
    assert "artifact path" in response.json()["message"]
    assert not Artifact.objects.exists() and no_files_under(outputs_folder, build)


def test_an_upload_without_content_length_is_a_411(build: Build, launcher: APIClient) -> None:
    response = put(launcher, build, "a.txt", b"x", CONTENT_LENGTH="")
    assert response.status_code == 411
    assert "Content-Length" in response.json()["message"]


def test_a_body_shorter_than_its_content_length_stores_nothing(
    build: Build, outputs_folder: Path
) -> None:
    with pytest.raises(ArtifactUploadError) as refused:
        receive_artifact(build_id=build.pk, path="cut.bin", body=io.BytesIO(b"abc"), length=10)
    assert refused.value.status == 400
    assert "ended after 3 of the 10 bytes" in refused.value.message
    assert not Artifact.objects.exists() and no_files_under(outputs_folder, build)


def test_a_path_cannot_be_a_file_and_a_folder(build: Build, launcher: APIClient) -> None:
    assert put(launcher, build, "a", b"file").status_code == 201
    clash = put(launcher, build, "a/b", b"below a file")
    assert clash.status_code == 409 and "'a' is already a file" in clash.json()["message"]
    assert put(launcher, build, "c/d", b"in a folder").status_code == 201
    clash = put(launcher, build, "c", b"over a folder")
    assert clash.status_code == 409 and "'c' is already a folder" in clash.json()["message"]
    assert stored(build) == {"a": b"file", "c/d": b"in a folder"}


# --- the caps ----------------------------------------------------------------------------------


def test_a_file_past_the_per_file_cap_is_a_413_and_stores_nothing(
    build: Build, launcher: APIClient, settings: Any, outputs_folder: Path
) -> None:
    settings.SD_ARTIFACTS_MAX_FILE_BYTES = 1000
    assert put(launcher, build, "fits.bin", b"x" * 1000).status_code == 201
    response = put(launcher, build, "too-big.bin", b"x" * 1001)
    assert response.status_code == 413
    message = response.json()["message"]
    assert "too-big.bin (1001 bytes)" in message and "SD_ARTIFACTS_MAX_FILE_BYTES" in message
    assert stored(build) == {"fits.bin": b"x" * 1000}
    assert not (outputs_folder / "artifacts" / str(build.pk) / "too-big.bin").exists()


def test_files_past_the_per_build_cap_are_a_413_and_a_replacement_counts_once(
    build: Build, launcher: APIClient, settings: Any
) -> None:
    settings.SD_ARTIFACTS_MAX_BUILD_BYTES = 1000
    assert put(launcher, build, "a.bin", b"a" * 600).status_code == 201
    response = put(launcher, build, "b.bin", b"b" * 401)
    assert response.status_code == 413
    assert "SD_ARTIFACTS_MAX_BUILD_BYTES" in response.json()["message"]
    # Replacing a.bin frees its 600 bytes first.
    assert put(launcher, build, "a.bin", b"A" * 1000).status_code == 201
    assert stored(build) == {"a.bin": b"A" * 1000}


# --- a zip the server expands ------------------------------------------------------------------


def test_a_zip_is_expanded_into_artifacts_without_folders_or_links(
    build: Build, launcher: APIClient
) -> None:
    files = {
        "index.html": b"<h1>report</h1>",
        "deep/er/data.bin": bytes(range(256)) * 50,
        "manifest.txt": b"./index.html\n./deep/er/data.bin\n",
    }
    body = zip_of({**files, "empty-folder/": b""}, links={"shadow": "/etc/shadow"})
    response = put_zip(launcher, build, body)
    assert response.status_code == 201, response.json()
    assert response.json() == {"files": 3, "size": sum(len(d) for d in files.values())}
    assert stored(build) == files
    html = Artifact.objects.get(build=build, path="index.html")
    assert html.content_type == "text/html"
    assert html.sha256 == hashlib.sha256(files["index.html"]).hexdigest()


@pytest.mark.parametrize("name", ["../escape.txt", "a/../../escape.txt", "/etc/cron.d/x"])
def test_a_zip_with_a_path_outside_the_folder_is_refused_whole(
    build: Build, launcher: APIClient, outputs_folder: Path, name: str
) -> None:
    response = put_zip(launcher, build, zip_of({"good.txt": b"fine", name: b"evil"}))
    assert response.status_code == 400
    assert "The zip was refused" in response.json()["message"]
    assert not Artifact.objects.exists() and no_files_under(outputs_folder, build)


def test_a_zip_bomb_stops_at_the_per_file_cap_and_leaves_nothing(
    build: Build, launcher: APIClient, settings: Any, outputs_folder: Path
) -> None:
    settings.SD_ARTIFACTS_MAX_FILE_BYTES = 1024 * 1024
    # 16 MiB of zeros deflate to about 16 KiB; the server must stop reading at 1 MiB.
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("first.txt", b"stored first")
        with archive.open("bomb.bin", "w") as bomb:
            for _ in range(16):
                bomb.write(bytes(1024 * 1024))
    assert len(out.getvalue()) < 50_000
    response = put_zip(launcher, build, out.getvalue())
    assert response.status_code == 413
    assert "'bomb.bin'" in response.json()["message"]
    assert not Artifact.objects.exists() and no_files_under(outputs_folder, build)


def test_a_zip_whose_header_understates_an_entry_is_refused(
    build: Build, launcher: APIClient, outputs_folder: Path
) -> None:
    body = bytearray(zip_of({"liar.bin": bytes(100_000)}))
    # The central directory's uncompressed size (offset 24 of its entry) now claims 10 bytes.
    central = body.rindex(b"PK\x01\x02")
    body[central + 24 : central + 28] = (10).to_bytes(4, "little")
    response = put_zip(launcher, build, bytes(body))
    assert response.status_code == 400, response.json()
    assert "'liar.bin' could not be read" in response.json()["message"]
    assert not Artifact.objects.exists() and no_files_under(outputs_folder, build)


def test_a_zip_past_the_per_build_cap_leaves_nothing_even_of_the_entries_that_fit(
    build: Build, launcher: APIClient, settings: Any, outputs_folder: Path
) -> None:
    settings.SD_ARTIFACTS_MAX_BUILD_BYTES = 10_000
    assert put(launcher, build, "earlier.txt", b"e" * 2_000).status_code == 201
    body = zip_of({"a.bin": b"a" * 5_000, "b.bin": b"b" * 3_001})
    response = put_zip(launcher, build, body)
    assert response.status_code == 413
    assert "'b.bin'" in response.json()["message"]
    assert stored(build) == {"earlier.txt": b"e" * 2_000}
    assert not (outputs_folder / "artifacts" / str(build.pk) / "a.bin").exists()


def test_a_body_that_is_not_a_zip_is_a_400(build: Build, launcher: APIClient) -> None:
    response = put_zip(launcher, build, b"this is not a zip")
    assert response.status_code == 400
    assert "not a zip file" in response.json()["message"]


def test_a_zip_from_another_build_or_a_person_is_refused(build: Build, owner: User) -> None:
    body = zip_of({"a.txt": b"x"})
    other = mark_running(build_id=queued_build(owner, "local/other").pk)
    assert put_zip(bearer(issue_build_token(other)), build, body).status_code == 403
    person = bearer(create_user_token(user=owner, name="cli").value)
    assert put_zip(person, build, body).status_code == 403
    assert not Artifact.objects.exists()


# --- the same on S3 ---------------------------------------------------------------------------


def test_an_upload_and_a_zip_land_in_s3(build: Build, launcher: APIClient, s3_outputs: str) -> None:
    data = b"\x00\x01binary" * 5_000
    assert put(launcher, build, "one/file.bin", data).status_code == 201
    assert put_zip(launcher, build, zip_of({"z/a.txt": b"from the zip"})).status_code == 201
    assert stored(build) == {"one/file.bin": data, "z/a.txt": b"from the zip"}


def test_a_refused_zip_leaves_nothing_in_s3(
    build: Build, launcher: APIClient, settings: Any, s3_outputs: str
) -> None:
    import boto3

    settings.SD_ARTIFACTS_MAX_BUILD_BYTES = 1_000
    response = put_zip(launcher, build, zip_of({"a.bin": b"a" * 600, "b.bin": b"b" * 600}))
    assert response.status_code == 413
    storage_options = settings.STORAGES["outputs"]["OPTIONS"]
    client = boto3.client(
        "s3",
        endpoint_url=storage_options["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    listed = client.list_objects_v2(Bucket=storage_options["bucket_name"])
    assert listed.get("KeyCount", 0) == 0, listed.get("Contents")
    assert not Artifact.objects.exists()
