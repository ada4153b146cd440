"""A build cache's files as a tar.gz archive, read and written without following links.

The files belong to the build: its steps (root, in a container) may have put a symbolic link
anywhere, and a container may still be running while a cache is restored. So, as in
confined.py, every file is reached from a directory handle one name at a time with
O_NOFOLLOW, and:

- reading (`survey`, `pack`): a link is stored as a link when it points inside the cached
  path, left out otherwise; it is never followed. FIFOs, sockets and devices are left out.
  Hard links are stored as separate files. Modes and modification times are kept, owners not.
- writing (`check_archive`, `unpack`): the whole archive is checked before anything is written,
  and refused if any member would land outside the target (an absolute name, `..`, a name below
  a link of the archive), is a link pointing outside it, or is anything but a file, a folder or
  a link; then it is unpacked into the target, replacing (never following) whatever link or
  file stands where a folder or file goes. Setuid and setgid bits are dropped.

The member `.` is the cached path itself (a folder, or one file); the others are relative to it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_COPY_BYTES = 1 << 20
# Deeper trees would hold one descriptor per level open: no real cache is this deep.
MAX_DEPTH = 256
ROOT = "."


def human_bytes(count: int) -> str:
    """`512 B`, `12.0 KiB`, `5.0 GiB`."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


class ArchiveError(Exception):
    """The files or the archive cannot be a cache; the message says why, in one sentence."""


class Stopped(ArchiveError):
    """The build was stopped (or ran out of time) meanwhile."""


@dataclass
class Survey:
    """What a cached path holds: its digest, size and what was left out."""

    kind: str = ""  # "dir" or "file"
    files: int = 0
    bytes: int = 0
    digest: str = ""
    outside_links: list[str] = field(default_factory=list)
    special: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Entry:
    rel: str
    info: os.stat_result
    parent_fd: int
    name: str
    target: str = ""  # a link's target


def _stat(parent_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def link_stays_inside(rel: str, target: str) -> bool:
    """Whether link `rel` (relative to the cached folder) pointing at `target` stays in it."""
    if not target or target.startswith("/") or "\0" in target or rel == ROOT:
        return False
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    return joined != ".." and not joined.startswith("../") and not joined.startswith("/")


def _entries(
    parent_fd: int, name: str, survey: Survey, should_stop: Callable[[], bool]
) -> Iterator[_Entry]:
    """The cached path `name` of folder `parent_fd`, then everything in it, sorted, pre-order.

    Links pointing outside and special files are noted in `survey` and not yielded.
    """
    info = _stat(parent_fd, name)
    if info is None:
        raise FileNotFoundError(errno.ENOENT, "not there", name)
    if stat.S_ISLNK(info.st_mode):
        raise ArchiveError("it is a symbolic link, and caches follow no links")
    if stat.S_ISREG(info.st_mode):
        yield _Entry(ROOT, info, parent_fd, name)
        return
    if not stat.S_ISDIR(info.st_mode):
        raise ArchiveError("it is neither a file nor a folder")
    yield _Entry(ROOT, info, parent_fd, name)
    root = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    stack: list[tuple[int, str, Iterator[str]]] = [(root, "", iter(sorted(os.listdir(root))))]
    try:
        while stack:
            fd, prefix, names = stack[-1]
            child = next(names, None)
            if child is None:
                os.close(fd)
                stack.pop()
                continue
            if should_stop():
                raise Stopped("the build was stopped")
            rel = prefix + child
            info = _stat(fd, child)
            if info is None:
                continue
            mode = info.st_mode
            if stat.S_ISLNK(mode):
                target = os.readlink(child, dir_fd=fd)
                if link_stays_inside(rel, target):
                    yield _Entry(rel, info, fd, child, target)
                else:
                    survey.outside_links.append(rel)
            elif stat.S_ISREG(mode):
                yield _Entry(rel, info, fd, child)
            elif stat.S_ISDIR(mode):
                yield _Entry(rel, info, fd, child)
                if len(stack) >= MAX_DEPTH:
                    raise ArchiveError(f"it is more than {MAX_DEPTH} folders deep")
                sub = os.open(child, _DIR_FLAGS, dir_fd=fd)
                stack.append((sub, rel + "/", iter(sorted(os.listdir(sub)))))
            else:
                survey.special.append(rel)
    finally:
        for fd, _prefix, _names in stack:
            os.close(fd)


def _open_file(entry: _Entry) -> int:
    fd = os.open(
        entry.name,
        os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
        dir_fd=entry.parent_fd,
    )
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ArchiveError(f"{entry.rel} changed while it was read")
    os.set_blocking(fd, True)
    return fd


def _kind(mode: int) -> str:
    return "L" if stat.S_ISLNK(mode) else "D" if stat.S_ISDIR(mode) else "F"


def mode_bits(mode: int) -> int:
    """The permission bits a cache keeps: never setuid or setgid; sticky only on a folder."""
    return stat.S_IMODE(mode) & (0o1777 if stat.S_ISDIR(mode) else 0o777)


def survey(
    parent_fd: int, name: str, limit: int, should_stop: Callable[[], bool] = lambda: False
) -> Survey:
    """Digest the cached path `name` of folder `parent_fd`: names, kinds, modes, link targets
    and file contents (not times or owners). ArchiveError past `limit` bytes of files."""
    result = Survey()
    digest = hashlib.sha256()
    for entry in _entries(parent_fd, name, result, should_stop):
        mode = entry.info.st_mode
        if entry.rel == ROOT:
            result.kind = "dir" if stat.S_ISDIR(mode) else "file"
        kind = _kind(mode)
        size = entry.info.st_size if kind == "F" else 0
        record = f"{kind} {mode_bits(mode):o} {size} "
        digest.update(record.encode() + os.fsencode(entry.rel) + b"\0")
        if kind == "L":
            digest.update(os.fsencode(entry.target) + b"\0")
        if kind != "F":
            continue
        result.files += 1
        result.bytes += entry.info.st_size
        if result.bytes > limit:
            raise ArchiveError(
                f"its files hold more than {human_bytes(limit)}, the most a cache may hold "
                "(SD_CACHE_MAX_BYTES)"
            )
        fd = _open_file(entry)
        with os.fdopen(fd, "rb") as handle:
            left = entry.info.st_size
            while left > 0 and (chunk := handle.read(min(_COPY_BYTES, left))):
                digest.update(chunk)
                left -= len(chunk)
            if left:
                raise ArchiveError(f"{entry.rel} changed while it was read")
    result.digest = digest.hexdigest()
    return result


def pack(
    parent_fd: int,
    name: str,
    out: BinaryIO,
    limit: int,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Write the cached path `name` of folder `parent_fd` to `out` as tar.gz, failing once the
    archive passes `limit` bytes."""
    ignored = Survey()
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as tar:
        for entry in _entries(parent_fd, name, ignored, should_stop):
            info = tarfile.TarInfo(entry.rel)
            mode = entry.info.st_mode
            info.mode = mode_bits(mode)
            info.mtime = entry.info.st_mtime
            if stat.S_ISLNK(mode):
                info.type, info.linkname = tarfile.SYMTYPE, entry.target
                tar.addfile(info)
            elif stat.S_ISDIR(mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                fd = _open_file(entry)
                with os.fdopen(fd, "rb") as handle:
                    info.size = os.fstat(fd).st_size
                    tar.addfile(info, handle)
            if out.tell() > limit:
                raise ArchiveError(
                    f"its archive is larger than {human_bytes(limit)}, the most a cache may take "
                    "(SD_CACHE_MAX_BYTES)"
                )
    if out.tell() > limit:
        raise ArchiveError(
            f"its archive is larger than {human_bytes(limit)}, the most a cache may take "
            "(SD_CACHE_MAX_BYTES)"
        )


# -- restoring ---------------------------------------------------------------------------------


def _members(archive: BinaryIO) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """The members of a tar.gz stream, one at a time (tarfile would keep them all listed)."""
    archive.seek(0)
    with tarfile.open(fileobj=archive, mode="r|gz") as tar:
        while (member := tar.next()) is not None:
            yield tar, member
            # Reading a stream needs only the member at hand; a big cache's list would not fit.
            tar.members = []  # type: ignore[attr-defined]


def _name_is_safe(name: str) -> bool:
    if name == ROOT:
        return True
    parts = name.split("/")
    return (
        not name.startswith("/")
        and "\0" not in name
        and all(part not in ("", ".", "..") for part in parts)
    )


def check_archive(archive: BinaryIO, limit: int) -> str:
    """Check every member before anything is written; return the root's kind ("dir"/"file").

    ArchiveError names the first member that could write outside the target, or says what
    else is wrong.
    """
    kind = ""
    total = 0
    links: set[str] = set()
    try:
        for _tar, member in _members(archive):
            name = member.name
            if not kind:
                if name != ROOT or not (member.isdir() or member.type in _FILE_TYPES):
                    raise ArchiveError(f"its first member is {name!r}, not the cached path")
                kind = "dir" if member.isdir() else "file"
                continue
            if kind == "file":
                raise ArchiveError(f"it holds {name!r} besides the one cached file")
            if not _name_is_safe(name):
                raise ArchiveError(f"it holds {name!r}, which would land outside the cached path")
            parts = name.split("/")
            if any("/".join(parts[:i]) in links for i in range(1, len(parts))):
                raise ArchiveError(f"it holds {name!r}, which lies below one of its links")
            if member.issym():
                if not link_stays_inside(name, member.linkname):
                    raise ArchiveError(
                        f"it holds the link {name!r} to {member.linkname!r}, "
                        "which points outside the cached path"
                    )
                links.add(name)
            elif member.type in _FILE_TYPES:
                total += member.size
                if total > limit:
                    raise ArchiveError(
                        f"its files hold more than {human_bytes(limit)}, the most a cache may hold "
                        "(SD_CACHE_MAX_BYTES)"
                    )
            elif not member.isdir():
                raise ArchiveError(f"it holds {name!r}, which is not a file, folder or link")
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise ArchiveError(f"it is not a readable tar.gz archive ({exc})") from exc
    if not kind:
        raise ArchiveError("it is empty")
    return kind


_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)


def _remove(parent_fd: int, name: str) -> None:
    """Remove whatever is at `name` (a folder with all it holds); never follows a link."""
    info = _stat(parent_fd, name)
    if info is None:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(name, dir_fd=parent_fd)
    else:
        os.unlink(name, dir_fd=parent_fd)


def _folder(parent_fd: int, name: str) -> int:
    """A handle on the folder `name`, made first, or in place of a file or link of that name."""
    info = _stat(parent_fd, name)
    if info is not None and not stat.S_ISDIR(info.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        info = None
    if info is None:
        os.mkdir(name, 0o700, dir_fd=parent_fd)
    return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)


@contextlib.contextmanager
def _parent_of(root_fd: int, parts: list[str]) -> Iterator[int]:
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            child = _folder(fd, part)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _write_file(parent_fd: int, name: str, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
    _remove(parent_fd, name)
    fd = os.open(
        name,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o600,
        dir_fd=parent_fd,
    )
    with os.fdopen(fd, "wb") as handle:
        source = tar.extractfile(member)
        if source is not None:
            shutil.copyfileobj(source, handle, _COPY_BYTES)
        handle.flush()
        os.fchmod(fd, member.mode & 0o777)
        os.utime(fd, (member.mtime, member.mtime))


def unpack(
    archive: BinaryIO,
    parent_fd: int,
    name: str,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Unpack a checked archive (`check_archive`) as `name` of folder `parent_fd`; return how
    many files it wrote. A folder is merged into the one there."""
    files = 0
    folders: list[tuple[list[str], int, float]] = []
    root_fd = -1
    try:
        for tar, member in _members(archive):
            if should_stop():
                raise Stopped("the build was stopped")
            if member.name == ROOT:
                if member.isdir():
                    root_fd = _folder(parent_fd, name)
                    folders.append(([], member.mode, member.mtime))
                else:
                    _write_file(parent_fd, name, member, tar)
                    files += 1
                continue
            parts = member.name.split("/")
            with _parent_of(root_fd, parts) as fd:
                leaf = parts[-1]
                if member.isdir():
                    os.close(_folder(fd, leaf))
                    folders.append((parts, member.mode, member.mtime))
                elif member.issym():
                    _remove(fd, leaf)
                    os.symlink(member.linkname, leaf, dir_fd=fd)
                else:
                    _write_file(fd, leaf, member, tar)
                    files += 1
        # Folders get their own modes last, deepest first: a read-only one was written into.
        for parts, mode, mtime in reversed(folders):
            fd = os.dup(root_fd)
            try:
                for part in parts:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                    os.close(fd)
                    fd = child
                os.fchmod(fd, mode & 0o1777)
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)
    except tarfile.TarError as exc:
        raise ArchiveError(f"it is not a readable tar.gz archive ({exc})") from exc
    finally:
        if root_fd >= 0:
            os.close(root_fd)
    return files
