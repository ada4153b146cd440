"""A build's published files: stored in the outputs storage, listed by Artifact rows.

Writers (the upload route) go through `store_artifact`; readers list with `artifacts_of` and
stream with `screwdriver_site.outputs.read_chunks(artifact.storage_name, ...)`.
"""

from __future__ import annotations

import hashlib
import mimetypes
import posixpath
import tempfile
from collections.abc import Iterable
from typing import IO

from django.core.files import File
from django.db import transaction

from builds.models import Artifact, Build
from screwdriver_site.outputs import delete_prefix, outputs

MAX_PATH_BYTES = 1024
_COPY_BYTES = 256 * 1024


class ArtifactPathError(ValueError):
    """A path that cannot name a file under the artifacts folder."""


def check_artifact_path(path: str) -> str:
    """`path` made canonical (POSIX, relative, no `.`/`..`), or ArtifactPathError."""
    if not isinstance(path, str) or not path:
        raise ArtifactPathError("an artifact path may not be empty")
    if "\0" in path or "\\" in path or any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise ArtifactPathError(f"an artifact path may not hold control characters: {path!r}")
    if path.startswith("/"):
        raise ArtifactPathError(f"an artifact path must be relative: {path!r}")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise ArtifactPathError(f"an artifact path may not leave the artifacts folder: {path!r}")
    clean = "/".join(parts)
    if len(clean.encode()) > MAX_PATH_BYTES:
        raise ArtifactPathError(f"an artifact path is longer than {MAX_PATH_BYTES} bytes")
    return clean


def path_key(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()


def content_type_of(path: str) -> str:
    guessed, _encoding = mimetypes.guess_type(posixpath.basename(path), strict=False)
    return guessed or "application/octet-stream"


def store_artifact(build: Build, path: str, source: IO[bytes]) -> Artifact:
    """Save the bytes of `source` as the build's artifact `path` (replacing one of that path).

    The bytes are copied once through a spooled file while their digest and size are taken,
    so nothing is held whole in memory; the row is written after the file is stored.
    """
    path = check_artifact_path(path)
    digest = hashlib.sha256()
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=_COPY_BYTES) as spool:
        while chunk := source.read(_COPY_BYTES):
            digest.update(chunk)
            size += len(chunk)
            spool.write(chunk)
        spool.seek(0)
        name = f"artifacts/{build.pk}/{path}"
        storage = outputs()
        saved = storage.save(name, File(spool, name=posixpath.basename(path)))
    if saved != name:  # a storage that renames instead of overwriting: never serve the wrong file
        storage.delete(saved)
        raise ArtifactPathError(f"the storage could not keep {path!r} under its own name")
    with transaction.atomic():
        artifact, _created = Artifact.objects.update_or_create(
            build=build,
            path_key=path_key(path),
            defaults={
                "path": path,
                "size": size,
                "sha256": digest.hexdigest(),
                "content_type": content_type_of(path),
            },
        )
    return artifact


def artifacts_of(build: Build) -> list[Artifact]:
    """The build's artifacts, ordered by path."""
    return sorted(Artifact.objects.filter(build=build), key=lambda artifact: artifact.path)


def artifact_at(build: Build, path: str) -> Artifact | None:
    try:
        path = check_artifact_path(path)
    except ArtifactPathError:
        return None
    return Artifact.objects.filter(build=build, path_key=path_key(path)).first()


def delete_artifacts(builds: Iterable[Build]) -> int:
    """Delete the stored files and rows of these builds' artifacts; return the files deleted."""
    count = 0
    for build in builds:
        count += delete_prefix(f"artifacts/{build.pk}")
        Artifact.objects.filter(build=build).delete()
    return count
