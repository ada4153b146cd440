"""The server's data folder is private: folders 0700, files 0600, from the moment they exist."""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

# What the server creates is its own; builds get the usual 022 back (executors.local).
SERVER_UMASK = 0o077


def private_dir(path: Path) -> Path:
    """Create `path` readable by this user only; tighten it if it is ours and looser."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    loose = stat.S_IMODE(info.st_mode) & 0o077
    # A shared folder with the sticky bit (/tmp) is never ours to close.
    if loose and info.st_uid == os.getuid() and not info.st_mode & stat.S_ISVTX:
        path.chmod(0o700)
        logger.info("Made %s private (0700): it holds the database and the secret key.", path)
    return path


def private_file(path: Path, text: str = "") -> bool:
    """Create `path` with mode 0600 holding `text`, unless it exists; True when created.

    The file appears whole or not at all, and private from its first instant: it is written
    under a temporary name, then linked into place (which fails if another process won).
    """
    if path.exists():
        return False
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:  # mkstemp makes it 0600
            out.write(text)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
    finally:
        os.unlink(temporary)
    return True
