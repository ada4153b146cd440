"""The outputs storage: SD_STORAGE_URL, and the same behaviour from a folder and from S3."""

from __future__ import annotations

import io
import os
import tracemalloc
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from screwdriver_site.outputs import (
    StorageUrlError,
    check_name,
    delete_prefix,
    outputs,
    read_chunks,
    storage_settings,
)


def test_no_url_is_a_private_folder_under_the_data_folder(tmp_path: Path) -> None:
    entry = storage_settings("", tmp_path / "outputs", {})
    assert entry["BACKEND"] == "django.core.files.storage.FileSystemStorage"
    assert entry["OPTIONS"]["location"] == str(tmp_path / "outputs")
    assert entry["OPTIONS"]["file_permissions_mode"] == 0o600
    assert entry["OPTIONS"]["base_url"] is None  # never served as static files


def test_an_s3_url_names_bucket_prefix_endpoint_and_keys(tmp_path: Path) -> None:
    url = "s3://builds/sd/out?endpoint_url=http://minio:9000&region=eu-west-1&addressing_style=path"
    keys = {"SD_STORAGE_ACCESS_KEY": "a", "SD_STORAGE_SECRET_KEY": "b"}
    entry = storage_settings(url, tmp_path, keys)
    options = entry["OPTIONS"]
    assert entry["BACKEND"] == "storages.backends.s3.S3Storage"
    assert (options["bucket_name"], options["location"]) == ("builds", "sd/out")
    assert (options["endpoint_url"], options["region_name"]) == ("http://minio:9000", "eu-west-1")
    assert (options["access_key"], options["secret_key"]) == ("a", "b")


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("gs://bucket", "must start with s3:// or file://"),
        ("s3:///prefix", "needs a bucket name"),
        ("s3://bucket?endpoint=http://x", "unknown option 'endpoint'"),
        ("file://host/path", "absolute path"),
    ],
)
def test_a_url_the_server_cannot_use_is_refused_saying_why(
    tmp_path: Path, url: str, said: str
) -> None:
    with pytest.raises(StorageUrlError, match=said):
        storage_settings(url, tmp_path, {})


@pytest.mark.parametrize("name", ["", "/abs", "a/../b", "a//b", "./a", "a\\b", "a\0b"])
def test_names_stay_inside_the_storage(name: str) -> None:
    with pytest.raises(ValueError, match="not a storage name"):
        check_name(name)


@pytest.fixture(params=["folder", "s3"])
def storage_kind(request: pytest.FixtureRequest, outputs_folder: Path) -> str:
    if request.param == "s3":
        request.getfixturevalue("s3_outputs")
    return str(request.param)


def test_ranges_stream_the_same_bytes_from_either_storage(storage_kind: str) -> None:
    data = os.urandom(700_000)
    outputs().save("artifacts/1/blob.bin", ContentFile(data))
    assert b"".join(read_chunks("artifacts/1/blob.bin")) == data
    assert b"".join(read_chunks("artifacts/1/blob.bin", 100, 300_100)) == data[100:300_100]
    assert b"".join(read_chunks("artifacts/1/blob.bin", 699_990)) == data[699_990:]
    assert b"".join(read_chunks("artifacts/1/blob.bin", 5, 5)) == b""
    assert max(len(c) for c in read_chunks("artifacts/1/blob.bin")) <= 256 * 1024


def test_deleting_a_folder_deletes_what_is_under_it_only(storage_kind: str) -> None:
    storage = outputs()
    for name in ("artifacts/1/a.txt", "artifacts/1/deep/b.txt", "artifacts/12/c.txt"):
        storage.save(name, ContentFile(b"x"))
    assert delete_prefix("artifacts/1") == 2
    assert not storage.exists("artifacts/1/a.txt")
    assert not storage.exists("artifacts/1/deep/b.txt")
    assert storage.exists("artifacts/12/c.txt")
    assert delete_prefix("artifacts/404") == 0


def test_a_folder_file_is_read_without_holding_it_whole(outputs_folder: Path) -> None:
    size = 8 * 1024 * 1024
    outputs().save("artifacts/1/big.bin", io.BytesIO(b"\0" * size))
    tracemalloc.start()
    try:
        total = sum(len(chunk) for chunk in read_chunks("artifacts/1/big.bin"))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size
    assert peak < size / 8


def test_folder_files_are_private(outputs_folder: Path) -> None:
    outputs().save("artifacts/1/secret.txt", ContentFile(b"x"))
    path = outputs_folder / "artifacts" / "1" / "secret.txt"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
