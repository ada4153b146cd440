"""The interface every source-control backend implements, and the types it hands out."""

from __future__ import annotations

import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, ClassVar

import httpx

# A pull request's changed files are read 100 at a time, ten pages at most: past that, unknown.
PR_FILES_PER_PAGE = 100
MAX_PR_FILE_PAGES = 10


@cache
def tls_context() -> ssl.SSLContext:
    """The TLS settings of every call to an SCM: built once, as loading the CAs takes 20 ms."""
    # httpx builds the same context (its CA bundle, SSL_CERT_FILE/SSL_CERT_DIR) for each
    # client it makes; one shared context is safe across threads.
    return httpx.create_ssl_context()


class ScmError(Exception):
    """A problem with a repository or URL; the message is shown to users as is."""


class ScmTokenRejected(ScmError):
    """The SCM answered 401 to a person's own token: it expired or was revoked."""


def paged_file_names(
    fetch_page: Callable[[int, int], Any], *, key: str, error: str
) -> list[str] | None:
    """The distinct ``key`` of every item of a paged list, sorted; None past the last page read.

    ``fetch_page(page, per_page)`` answers one page; ``error`` is said when one is not a list.
    """
    files: list[str] = []
    for page in range(1, MAX_PR_FILE_PAGES + 1):
        data = fetch_page(page, PR_FILES_PER_PAGE)
        if not isinstance(data, list):
            raise ScmError(error)
        files.extend(str(item[key]) for item in data if isinstance(item, dict) and item.get(key))
        if len(data) < PR_FILES_PER_PAGE:
            return sorted(set(files))
    return None


@dataclass(frozen=True)
class CommitInfo:
    """One commit as the server records it on an event."""

    sha: str
    message: str
    author_name: str
    author_email: str
    committed_at: datetime  # aware, UTC
    url: str  # a page a browser can open; "" when the SCM has none (local git)


@dataclass(frozen=True)
class RepoRef:
    """A parsed checkout URL: one repository and one branch."""

    scm_context: str  # "local", later "github:github.com", ...
    scm_uri: str  # stable id of repository + branch, e.g. "local:/abs/repo.git:main"
    repo_path: str  # absolute path on disk (local git only)
    branch: str
    name: str  # short display name, e.g. "repo" for /abs/repo.git
    checkout_url: str  # normalised, e.g. "file:///abs/repo.git#main"


class Scm(ABC):
    """What the server needs from a source-control backend."""

    scm_context: ClassVar[str]

    @abstractmethod
    def parse_url(self, url: str) -> RepoRef:
        """Parse and check a checkout URL; raise ScmError if it is unusable."""

    def stored_ref(self, checkout_url: str) -> RepoRef:
        """The ref of a checkout URL `parse_url` normalised earlier (a pipeline's).

        The URL was checked when it was stored, so an SCM may rebuild the ref without asking
        the repository again; reading it afterwards fails as clearly if it has gone since.
        """
        return self.parse_url(checkout_url)

    @abstractmethod
    def head_sha(self, ref: RepoRef) -> str:
        """Return the sha the branch points at now."""

    @abstractmethod
    def read_file(self, ref: RepoRef, sha: str, path: str) -> bytes | None:
        """Return a file's bytes at a commit, or None when it does not exist there."""

    @abstractmethod
    def commit_info(self, ref: RepoRef, sha: str) -> CommitInfo:
        """Return author, message and time of a commit."""

    @abstractmethod
    def install_hook(self, ref: RepoRef, *, notify_url: str, key: bytes) -> bool:
        """Arrange for pushes to be reported to notify_url; False when the server must poll."""

    def tag_sha(self, ref: RepoRef, tag: str) -> str:
        """Return the commit a tag points at; an SCM that cannot say raises ScmError."""
        raise ScmError(f"{type(self).__name__} cannot look up tag {tag}.")

    def user_role(self, ref: RepoRef, token: str) -> str | None:
        """Return the token holder's right on the repository: "admin", "push", "pull" or None."""
        return None

    def is_private(self, ref: RepoRef) -> bool:
        """Return whether the repository is hidden from people without access to it."""
        return False

    def pr_changed_files(self, ref: RepoRef, pr_num: int) -> list[str] | None:
        """Return every file a pull request changes against its base; None when unknown.

        None (too many files, or an SCM without pull requests) means that every job runs,
        sourcePaths or not; an SCM that cannot answer raises ScmError.
        """
        return None
