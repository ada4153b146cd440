"""The storage of build outputs: artifacts, caches and command binaries.

One Django storage, named "outputs": a private folder under SD_DATA_DIR by default, or any
S3-compatible store when SD_STORAGE_URL says so (django-storages). Callers go through
`outputs()` and the helpers here, never through a backend's own API, so both behave alike:
names are POSIX paths relative to the storage's root, reads stream in chunks and ranges.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.core.files.storage import Storage, storages

ALIAS = "outputs"
CHUNK_BYTES = 256 * 1024
_S3_OPTIONS = {
    # query parameter -> (django-storages option, converter)
    "endpoint_url": "endpoint_url",
    "region": "region_name",
    "addressing_style": "addressing_style",
    "signature_version": "signature_version",
}


class StorageUrlError(ValueError):
    """SD_STORAGE_URL names no storage this server can use."""


def storage_settings(url: str, default_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """The STORAGES entry for SD_STORAGE_URL (empty: the folder `default_dir`).

    `s3://BUCKET[/PREFIX]?endpoint_url=URL&region=R&addressing_style=path` selects an
    S3-compatible store; the keys come from SD_STORAGE_ACCESS_KEY and SD_STORAGE_SECRET_KEY in
    `env`, else from boto3's usual places (AWS_* variables, instance roles).
    `file:///abs/path` (or a bare absolute path) selects another folder.
    """
    if not url:
        return _folder(default_dir)
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise StorageUrlError(f"SD_STORAGE_URL: a folder must be an absolute path, got {url!r}")
        return _folder(Path(parts.path))
    if parts.scheme != "s3":
        raise StorageUrlError(
            f"SD_STORAGE_URL must start with s3:// or file://, got {parts.scheme}://"
        )
    if not parts.netloc:
        raise StorageUrlError("SD_STORAGE_URL: s3:// needs a bucket name (s3://BUCKET/PREFIX)")
    options: dict[str, Any] = {
        "bucket_name": parts.netloc,
        "location": parts.path.strip("/"),
        "default_acl": None,
        "querystring_auth": True,
        "file_overwrite": True,
    }
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        if key not in _S3_OPTIONS:
            known = ", ".join(sorted(_S3_OPTIONS))
            raise StorageUrlError(f"SD_STORAGE_URL: unknown option {key!r} (known: {known})")
        options[_S3_OPTIONS[key]] = values[-1]
    # boto3 sends a large file in 8 MiB parts, each read into memory first, and by default
    # keeps ten of them there: 80 MiB per upload. Two parts at a time, two in memory.
    from boto3.s3.transfer import TransferConfig

    transfer = TransferConfig(multipart_chunksize=8 * 1024 * 1024, max_concurrency=2)
    transfer.max_in_memory_upload_chunks = 2
    options["transfer_config"] = transfer
    if env.get("SD_STORAGE_ACCESS_KEY"):
        options["access_key"] = env["SD_STORAGE_ACCESS_KEY"]
        options["secret_key"] = env.get("SD_STORAGE_SECRET_KEY", "")
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}


def _folder(location: Path) -> dict[str, Any]:
    return {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": str(location),
            "base_url": None,
            "allow_overwrite": True,
            "file_permissions_mode": 0o600,
            "directory_permissions_mode": 0o700,
        },
    }


def outputs() -> Storage:
    """The storage of build outputs."""
    return storages[ALIAS]


def is_s3(storage: Storage) -> bool:
    return hasattr(storage, "bucket_name") and hasattr(storage, "connection")


def check_name(name: str) -> str:
    """`name` as a storage name: relative, no `.`/`..` parts, no empty part, no NUL."""
    if (
        not name
        or "\0" in name
        or "\\" in name
        or name.startswith("/")
        or any(part in ("", ".", "..") for part in name.split("/"))
    ):
        raise ValueError(f"not a storage name: {name!r}")
    return name


def read_chunks(
    name: str, start: int = 0, end: int | None = None, *, storage: Storage | None = None
) -> Iterator[bytes]:
    """The bytes of `name` from `start` up to `end` (exclusive; None: the end), in chunks.

    Nothing is read whole: a folder's file is read chunk by chunk after a seek; an object in
    S3 is fetched with a ranged GET and its body streamed.
    """
    storage = storage or outputs()
    check_name(name)
    if end is not None and end <= start:
        return
    if is_s3(storage):
        yield from _s3_chunks(storage, name, start, end)
        return
    remaining = None if end is None else end - start
    with storage.open(name, "rb") as source:
        source.seek(start)
        while remaining is None or remaining > 0:
            want = CHUNK_BYTES if remaining is None else min(CHUNK_BYTES, remaining)
            chunk = source.read(want)
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


def _s3_key(storage: Any, name: str) -> str:
    return posixpath.join(storage.location, name) if storage.location else name


def _s3_chunks(storage: Any, name: str, start: int, end: int | None) -> Iterator[bytes]:
    wanted = f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"
    client = storage.connection.meta.client
    if start == 0 and end is None:
        answer = client.get_object(Bucket=storage.bucket_name, Key=_s3_key(storage, name))
    else:
        answer = client.get_object(
            Bucket=storage.bucket_name, Key=_s3_key(storage, name), Range=wanted
        )
    body = answer["Body"]
    try:
        yield from body.iter_chunks(CHUNK_BYTES)
    finally:
        body.close()


def delete_prefix(prefix: str, *, storage: Storage | None = None) -> int:
    """Delete every file under the folder `prefix`; return how many went."""
    storage = storage or outputs()
    check_name(prefix)
    if is_s3(storage):
        return _s3_delete_prefix(storage, prefix)
    count = 0
    stack = [prefix]
    while stack:
        folder = stack.pop()
        if not storage.exists(folder):
            continue
        folders, files = storage.listdir(folder)
        for file in files:
            storage.delete(f"{folder}/{file}")
            count += 1
        stack.extend(f"{folder}/{sub}" for sub in folders)
    _remove_empty_folders(storage, prefix)
    return count


def _remove_empty_folders(storage: Any, prefix: str) -> None:
    root = Path(storage.path(prefix))
    if not root.is_dir():
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        folder.rmdir()
    root.rmdir()


def _s3_delete_prefix(storage: Any, prefix: str) -> int:
    bucket = storage.bucket
    key = _s3_key(storage, prefix).rstrip("/") + "/"
    count = 0
    batch: list[dict[str, str]] = []
    for item in bucket.objects.filter(Prefix=key):
        batch.append({"Key": item.key})
        if len(batch) == 1000:
            bucket.delete_objects(Delete={"Objects": batch, "Quiet": True})
            count += len(batch)
            batch = []
    if batch:
        bucket.delete_objects(Delete={"Objects": batch, "Quiet": True})
        count += len(batch)
    return count
