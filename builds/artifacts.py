"""A build's published files: stored in the outputs storage, listed by Artifact rows.

Writers (the upload route) go through `store_artifact`; readers list with `artifacts_of` and
stream with `screwdriver_site.outputs.read_chunks(artifact.storage_name, ...)`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mimetypes
import posixpath
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.core.files import File
from django.db import transaction

from builds.models import Artifact, Build, BuildStatus
from screwdriver_site.outputs import delete_prefix, outputs

logger = logging.getLogger(__name__)

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
    with _spool(source) as spooled:
        _save(build.pk, path, spooled)
    with transaction.atomic():
        artifact, _created = Artifact.objects.update_or_create(
            build=build,
            path_key=path_key(path),
            defaults={
                "path": path,
                "size": spooled.size,
                "sha256": spooled.sha256,
                "content_type": content_type_of(path),
            },
        )
    return artifact


class _Spooled:
    """Bytes copied to a temporary file (on disk past a few chunks), with size and digest."""

    def __init__(self) -> None:
        self.file = tempfile.SpooledTemporaryFile(max_size=_COPY_BYTES)  # noqa: SIM115 - closed by __exit__
        self.size = 0
        self.sha256 = ""

    def __enter__(self) -> _Spooled:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


class _TooLarge(Exception):
    """The source held more bytes than the limit it was copied with."""


def _spool(source: IO[bytes], limit: int | None = None) -> _Spooled:
    """Copy `source` to a spooled file; _TooLarge as soon as it passes `limit` bytes."""
    spooled = _Spooled()
    digest = hashlib.sha256()
    try:
        while chunk := source.read(_COPY_BYTES):
            spooled.size += len(chunk)
            if limit is not None and spooled.size > limit:
                raise _TooLarge
            digest.update(chunk)
            spooled.file.write(chunk)
    except BaseException:
        spooled.file.close()
        raise
    spooled.sha256 = digest.hexdigest()
    spooled.file.seek(0)
    return spooled


def _storage_name(build_id: int, path: str) -> str:
    return f"artifacts/{build_id}/{path}"


def _save(build_id: int, path: str, spooled: _Spooled, written: list[str] | None = None) -> None:
    """Store the spooled bytes as the build's `path`; `written` learns the path first, so a
    failure half-way still knows what to delete."""
    name = _storage_name(build_id, path)
    storage = outputs()
    if written is not None:
        written.append(path)
    saved = storage.save(name, File(spooled.file, name=posixpath.basename(path)))
    if saved != name:  # a storage that renames instead of overwriting: never serve the wrong file
        storage.delete(saved)
        raise ArtifactPathError(f"the storage could not keep {path!r} under its own name")


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


# --- uploads from a build's launcher ---------------------------------------------------------
# The launcher publishes $SD_ARTIFACTS_DIR while its build runs: one PUT per file, or one zip
# the server expands (docs/artifacts.md). Whatever an upload is refused for, it leaves nothing
# behind: the body is copied to a temporary file within the caps before anything is stored,
# and the rows are written in one transaction that checks the caps again under the build's lock.

# A zip may be this much larger than the per-build cap, for its own headers and directory.
ZIP_ALLOWANCE_FRACTION = 100
ZIP_ALLOWANCE_MIN_BYTES = 1024 * 1024
MAX_ZIP_ENTRIES = 100_000
_KEYS_PER_QUERY = 500
_S_IFMT = 0o170000


class ArtifactUploadError(Exception):
    """An upload refused: `status` is the HTTP status to answer with, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ArtifactCaps:
    """How much one build may publish (SD_ARTIFACTS_MAX_FILE_BYTES, _MAX_BUILD_BYTES)."""

    max_file_bytes: int
    max_build_bytes: int

    @classmethod
    def from_settings(cls) -> ArtifactCaps:
        return cls(
            max_file_bytes=int(settings.SD_ARTIFACTS_MAX_FILE_BYTES),
            max_build_bytes=int(settings.SD_ARTIFACTS_MAX_BUILD_BYTES),
        )

    @property
    def max_zip_bytes(self) -> int:
        allowance = max(ZIP_ALLOWANCE_MIN_BYTES, self.max_build_bytes // ZIP_ALLOWANCE_FRACTION)
        return self.max_build_bytes + allowance

    def file_too_large(self, what: str, size: int | None = None) -> ArtifactUploadError:
        shown = f" ({size} bytes)" if size is not None else ""
        return ArtifactUploadError(
            413,
            f"{what}{shown} is larger than the {self.max_file_bytes} bytes one artifact may "
            "have (SD_ARTIFACTS_MAX_FILE_BYTES): nothing was stored.",
        )

    def build_too_large(self, what: str) -> ArtifactUploadError:
        return ArtifactUploadError(
            413,
            f"{what} would take the build's artifacts past the {self.max_build_bytes} bytes a "
            "build may publish (SD_ARTIFACTS_MAX_BUILD_BYTES): nothing was stored.",
        )


@dataclass(frozen=True)
class Published:
    """One file an upload stored."""

    path: str
    size: int
    sha256: str


def receive_artifact(*, build_id: int, path: str, body: IO[bytes], length: int | None) -> Artifact:
    """Store one file a running build uploads, within the caps; refuse it whole otherwise.

    `length` is the request's Content-Length: it must be given, so that a body past a cap
    is refused before it is read.
    """
    caps = ArtifactCaps.from_settings()
    try:
        clean = check_artifact_path(path)
    except ArtifactPathError as exc:
        raise ArtifactUploadError(400, f"Bad artifact path: {exc}.") from None
    _require_running(build_id)
    declared = _declared_length(length)
    if declared > caps.max_file_bytes:
        raise caps.file_too_large(clean, declared)
    if _stored_bytes(build_id, exclude=[clean]) + declared > caps.max_build_bytes:
        raise caps.build_too_large(clean)
    _refuse_clashes(build_id, [clean])
    with _body(body, declared, f"The body of {clean}") as spooled:
        written: list[str] = []
        with _undone_on_failure(build_id, written):
            _store(build_id, clean, spooled, written)
            _commit(build_id, [Published(clean, spooled.size, spooled.sha256)], caps)
    return Artifact.objects.get(build_id=build_id, path_key=path_key(clean))


def receive_artifact_zip(*, build_id: int, body: IO[bytes], length: int | None) -> list[Published]:
    """Expand a zip a running build uploads into its artifacts, all of them or none.

    Entries that are folders or symbolic links are skipped; a path that would leave the
    artifacts folder refuses the whole zip. The caps count the bytes each entry really
    expands to, as they come out (never the sizes the zip's headers claim), so a zip bomb
    stops at the cap.
    """
    caps = ArtifactCaps.from_settings()
    _require_running(build_id)
    declared = _declared_length(length)
    if declared > caps.max_zip_bytes:
        raise ArtifactUploadError(
            413,
            f"The zip ({declared} bytes) is larger than the {caps.max_zip_bytes} bytes a "
            "build's zip of artifacts may have (SD_ARTIFACTS_MAX_BUILD_BYTES and 1% for the "
            "zip's headers): nothing was stored.",
        )
    with _body(body, declared, "The zip") as spooled:
        try:
            archive = zipfile.ZipFile(spooled.file)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
            raise ArtifactUploadError(400, f"The body is not a zip file: {exc}.") from None
        with archive:
            entries = _zip_entries(archive)
            paths = [path for path, _info in entries]
            _refuse_clashes(build_id, paths)
            received: list[Published] = []
            written: list[str] = []
            with _undone_on_failure(build_id, written):
                budget = caps.max_build_bytes - _stored_bytes(build_id, exclude=paths)
                for path, info in entries:
                    item = _expand_entry(build_id, archive, path, info, caps, budget, written)
                    received.append(item)
                    budget -= item.size
                _commit(build_id, received, caps)
    return received


def _body(body: IO[bytes], declared: int, what: str) -> _Spooled:
    """The request's body in a temporary file, if it is as long as its Content-Length."""
    try:
        spooled = _spool(body, declared)
    except _TooLarge:
        raise ArtifactUploadError(
            400, f"{what} is longer than its Content-Length ({declared})."
        ) from None
    if spooled.size != declared:
        spooled.file.close()
        raise ArtifactUploadError(
            400,
            f"{what} ended after {spooled.size} of the {declared} bytes its Content-Length "
            "announced: nothing was stored.",
        )
    return spooled


def _declared_length(length: int | None) -> int:
    if length is None:
        raise ArtifactUploadError(
            411, "Send the upload's size in Content-Length (chunked bodies are not taken)."
        )
    if length < 0:
        raise ArtifactUploadError(400, "Content-Length may not be negative.")
    return length


def _require_running(build_id: int) -> None:
    status = Build.objects.filter(pk=build_id).values_list("status", flat=True).first()
    if status is None:
        raise ArtifactUploadError(404, f"Build {build_id} does not exist.")
    if status != BuildStatus.RUNNING:
        raise ArtifactUploadError(
            409, f"Build {build_id} is {status}: artifacts are taken only while it runs."
        )


def _stored_bytes(build_id: int, *, exclude: Iterable[str]) -> int:
    """The bytes of the build's artifacts, but for those at the paths `exclude` (replaced)."""
    # Summed here rather than with NOT IN: a zip may name more paths than a query may hold.
    skipped = {path_key(path) for path in exclude}
    rows = Artifact.objects.filter(build_id=build_id).values_list("path_key", "size")
    return sum(size for key, size in rows.iterator() if key not in skipped)


def _delete_rows(build_id: int, paths: Iterable[str]) -> None:
    keys = [path_key(path) for path in paths]
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        chunk = keys[start : start + _KEYS_PER_QUERY]
        Artifact.objects.filter(build_id=build_id, path_key__in=chunk).delete()


def _zip_entries(archive: zipfile.ZipFile) -> list[tuple[str, zipfile.ZipInfo]]:
    """The zip's regular files as (artifact path, entry); a bad path refuses the whole zip."""
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise ArtifactUploadError(
            413, f"The zip holds {len(infos)} entries; a build may publish {MAX_ZIP_ENTRIES}."
        )
    entries: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if info.is_dir():
            continue
        kind = (info.external_attr >> 16) & _S_IFMT
        if info.create_system == 3 and kind not in (0, stat.S_IFREG):
            continue  # a symbolic link (or a device, a FIFO): never published
        try:
            path = check_artifact_path(info.filename)
        except ArtifactPathError as exc:
            raise ArtifactUploadError(400, f"The zip was refused: {exc}.") from None
        if info.flag_bits & 0x1:
            raise ArtifactUploadError(400, f"The zip was refused: {path!r} is encrypted.")
        if path in entries:
            raise ArtifactUploadError(400, f"The zip was refused: it holds {path!r} twice.")
        entries[path] = info
    return list(entries.items())


def _expand_entry(
    build_id: int,
    archive: zipfile.ZipFile,
    path: str,
    info: zipfile.ZipInfo,
    caps: ArtifactCaps,
    budget: int,
    written: list[str],
) -> Published:
    """Store one entry of the zip, counting the bytes it expands to against the caps."""
    limit = min(caps.max_file_bytes, max(budget, 0))
    try:
        with archive.open(info) as source:
            spooled = _spool(source, limit)
    except _TooLarge:
        if limit == caps.max_file_bytes:
            raise caps.file_too_large(f"The zip's {path!r}") from None
        raise caps.build_too_large(f"The zip's {path!r}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError) as exc:
        raise ArtifactUploadError(400, f"The zip's {path!r} could not be read: {exc}.") from None
    with spooled:
        _store(build_id, path, spooled, written)
    return Published(path, spooled.size, spooled.sha256)


def _store(build_id: int, path: str, spooled: _Spooled, written: list[str]) -> None:
    try:
        _save(build_id, path, spooled, written)
    except Exception as exc:
        # The storage's trouble (a full disk, S3 out of reach), not the build's: a 503 is
        # resent by the launcher.
        logger.exception("could not store the artifact %r of build %s", path, build_id)
        raise ArtifactUploadError(
            503, f"The server could not store {path!r} ({type(exc).__name__}): try again later."
        ) from exc


def _folders_of(paths: Iterable[str]) -> set[str]:
    return {path.rsplit("/", i)[0] for path in paths for i in range(1, path.count("/") + 1)}


def _refuse_clashes(build_id: int, paths: list[str]) -> None:
    """A path may not be a file and a folder at once, in the upload or with what is stored
    (a folder storage could not hold both; an S3 one would, and they must behave alike)."""
    folders = _folders_of(paths)
    stored = set(Artifact.objects.filter(build_id=build_id).values_list("path", flat=True))
    if both := min(folders & set(paths), default=None):
        why = "cannot be both a file and a folder of the build's artifacts"
    elif both := min(folders & stored, default=None):
        why = "is already a file of the build's artifacts, so not a folder"
    elif both := min(_folders_of(stored) & set(paths), default=None):
        why = "is already a folder of the build's artifacts, so not a file"
    if both:
        raise ArtifactUploadError(409, f"{both!r} {why}.")


@contextlib.contextmanager
def _undone_on_failure(build_id: int, written: list[str]) -> Iterator[None]:
    """On any error, delete the files this upload wrote (whole or not) and their paths' rows."""
    try:
        yield
    except BaseException:
        storage = outputs()
        for path in written:
            with contextlib.suppress(Exception):
                storage.delete(_storage_name(build_id, path))
        _delete_rows(build_id, written)
        raise


def _commit(build_id: int, received: list[Published], caps: ArtifactCaps) -> None:
    """Write the rows of stored files, if the build still runs and the caps still hold.

    Two uploads of one build may be stored at once; each checks the total under the build's
    row lock, so together they never pass the per-build cap.
    """
    paths = [item.path for item in received]
    with transaction.atomic():
        status = (
            Build.objects.select_for_update()
            .filter(pk=build_id)
            .values_list("status", flat=True)
            .first()
        )
        if status != BuildStatus.RUNNING:
            raise ArtifactUploadError(
                409, f"Build {build_id} ended during the upload: nothing was stored."
            )
        total = _stored_bytes(build_id, exclude=paths) + sum(item.size for item in received)
        if total > caps.max_build_bytes:
            raise caps.build_too_large("This upload")
        _delete_rows(build_id, paths)
        Artifact.objects.bulk_create(
            [
                Artifact(
                    build_id=build_id,
                    path=item.path,
                    path_key=path_key(item.path),
                    size=item.size,
                    sha256=item.sha256,
                    content_type=content_type_of(item.path),
                )
                for item in received
            ],
            batch_size=500,
        )
