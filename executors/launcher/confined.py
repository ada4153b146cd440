"""Files in a tree that a build may change while we use it, opened without following links.

A build's steps can replace any file or directory of the workspace with a symbolic link at
any moment; in a container they run as root. Whatever runs outside them (the launcher on the
host) and opens `workspace/.launcher/cmd-2.sh` by path would follow such a link to a file of
the host. So every path is walked from a handle on the tree's root, one component at a time
with O_NOFOLLOW: a link anywhere is refused (ELOOP/ENOTDIR), a directory swapped for another
one is still inside the tree, and what is opened is checked with fstat (a regular file or a
FIFO, as asked). New files are created with O_EXCL after removing whatever had the name, so
the launcher writes into an inode it made itself. Reads are capped.

The root itself is opened by path, refusing a link in its last component: the workspace is
the bind mount's root (or the pod's emptyDir), which the build can neither rename nor replace;
a directory right below it (the agent's control directory) can only be swapped for another
directory of the workspace.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
DEFAULT_MAX_READ_BYTES = 1 << 20


class Confined:
    """A directory tree opened once; paths below it are opened without following links."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._fd = os.open(self.root, _DIR_FLAGS)

    def close(self) -> None:
        """Let go of the root."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Confined:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _parts(self, path: Path) -> list[str]:
        relative = Path(path).relative_to(self.root) if Path(path).is_absolute() else Path(path)
        parts = list(relative.parts)
        if any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"{path} is not a path below {self.root}")
        return parts

    @contextlib.contextmanager
    def directory(self, path: Path, *, create: bool = False) -> Iterator[int]:
        """A handle on the directory at `path` (created, mode 0755, when `create`)."""
        fd = os.dup(self._fd)
        try:
            for part in self._parts(path) if Path(path) != self.root else []:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _parent(self, path: Path) -> Iterator[tuple[int, str]]:
        parts = self._parts(path)
        with self.directory(self.root.joinpath(*parts[:-1])) as fd:
            yield fd, parts[-1]

    def create(self, path: Path, mode: int = 0o600) -> int:
        """A new regular file at `path` (whatever had that name is removed), open to read
        and write; the caller closes the descriptor."""
        with self._parent(path) as (parent, name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=parent)
            fd = os.open(
                name,
                os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                mode,
                dir_fd=parent,
            )
        os.fchmod(fd, mode)  # whatever the umask
        return fd

    def write(
        self, path: Path, data: bytes, mode: int = 0o600, owner: tuple[int, int] | None = None
    ) -> None:
        """Make `path` a new regular file holding `data`, whatever had that name before.

        With `owner` (uid, gid) the file is that user's: the one a sandbox runs the steps as.
        """
        fd = self.create(path, mode)
        with os.fdopen(fd, "wb") as handle:
            if owner is not None:
                os.fchown(fd, *owner)
            handle.write(data)

    def read(self, path: Path, limit: int = DEFAULT_MAX_READ_BYTES) -> bytes:
        """The bytes of the regular file at `path`; ValueError when it holds more than `limit`."""
        fd = self.open(path, os.O_RDONLY, kind=stat.S_IFREG)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"{path} is larger than {limit} bytes")
        return data

    def open(self, path: Path, flags: int, *, kind: int) -> int:
        """Open `path` (never through a link, never blocking) if it is a `kind` (S_IFREG...)."""
        with self._parent(path) as (parent, name):
            fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
        if stat.S_IFMT(os.fstat(fd).st_mode) != kind:
            os.close(fd)
            raise OSError(errno.EINVAL, f"{path} is not what the launcher made there")
        if kind == stat.S_IFREG:
            os.set_blocking(fd, True)
        return fd

    def is_file(self, path: Path) -> bool:
        """Whether `path` is a regular file (a link to one is not)."""
        try:
            with self._parent(path) as (parent, name):
                return stat.S_ISREG(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
        except (OSError, ValueError):
            return False

    def unlink(self, path: Path) -> None:
        """Remove the entry `path` (a link itself, never what it points to)."""
        with self._parent(path) as (parent, name), contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=parent)
