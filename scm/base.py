"""The interface every source-control backend implements, and the types it hands out."""

from __future__ import annotations

import re
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


class ScmUnavailable(ScmError):
    """The SCM did not answer, or failed on its side (5xx): the same call may work later."""


@dataclass(frozen=True, repr=False)
class MintedCredential:
    """A credential an SCM issued for one build's clone: short-lived, one repository, read."""

    username: str
    password: str
    expires_at: datetime | None
    # The SCM's id of it (a GitLab deploy token's), "" when it has none.
    token_id: str = ""

    def __repr__(self) -> str:
        return f"MintedCredential({self.username}, expires {self.expires_at})"


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
class CommitCheck:
    """An extra status on a commit beside the build's own (Screwdriver's meta.status.NAME)."""

    context: str  # "Screwdriver/<pipelineId>/<NAME>"
    state: str  # "SUCCESS", "FAILURE" or "PENDING"
    description: str
    target_url: str


# A source directory is stored in Pipeline.root_dir and scm_repo; past this it is refused.
MAX_ROOT_DIR_LENGTH = 512
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def check_root_dir(path: str) -> str:
    """A source directory (Screwdriver's rootDir) in its normal form, or raise ScmError.

    It is a folder of the repository, relative to its top: no leading `/`, no `.` or `..`,
    no empty parts, no control characters; trailing slashes are dropped (`app/` is `app`).
    """
    cleaned = path.rstrip("/")
    parts = cleaned.split("/")
    if (
        not cleaned
        or cleaned.startswith("/")
        or _CONTROL_CHARACTERS.search(cleaned)
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise ScmError(
            f"{path!r} is not a source directory inside the repository: "
            "write a relative folder like app or services/api, after the branch (#main:app)."
        )
    if len(cleaned) > MAX_ROOT_DIR_LENGTH:
        raise ScmError(
            f"The source directory is longer than {MAX_ROOT_DIR_LENGTH} characters; "
            "pick a shorter folder."
        )
    return cleaned


def split_checkout_url(url: str) -> tuple[str, str, str]:
    """(location, branch, root dir) of `location#branch:path`; branch and root may be "".

    git forbids ':' in a branch name (a branch may hold '/' or '#'), so the first ':' after
    the first '#' ends the branch; the root dir is checked and normalised.
    """
    location, _, fragment = url.strip().partition("#")
    branch, colon, root = fragment.partition(":")
    return location, branch, check_root_dir(root) if colon else ""


def with_root_dir(url: str, root_dir: str) -> str:
    """`url` with its source directory replaced by `root_dir` ("" keeps the URL's own).

    A URL without a branch gets `#:root_dir`, which parse_url reads as the default branch.
    """
    if not root_dir:
        return url
    location, branch, _ = split_checkout_url(url)
    return f"{location}#{branch}:{check_root_dir(root_dir)}"


def branch_with_root(branch: str, root_dir: str) -> str:
    """`branch`, or `branch:root_dir`: how a checkout URL (after '#') and an scm_uri end."""
    return f"{branch}:{root_dir}" if root_dir else branch


@dataclass(frozen=True)
class RepoRef:
    """A parsed checkout URL: one repository, one branch and the folder the pipeline is in."""

    scm_context: str  # "local", later "github:github.com", ...
    # Stable id of repository + branch (+ ":root_dir" when there is one, as Screwdriver's
    # scmUri), e.g. "local:/abs/repo.git:main" or "local:/abs/repo.git:main:app".
    scm_uri: str
    repo_path: str  # absolute path on disk (local git only)
    branch: str
    name: str  # short display name, e.g. "repo" for /abs/repo.git
    checkout_url: str  # normalised, e.g. "file:///abs/repo.git#main" or "...#main:app"
    # Screwdriver's sourceDirectory: the repository folder whose screwdriver.yaml this
    # pipeline reads and where its builds start; "" for the repository's top.
    root_dir: str = ""

    def repo_file(self, path: str) -> str:
        """A path of the pipeline's folder as a path of the repository."""
        return f"{self.root_dir}/{path}" if self.root_dir else path


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

    def clone_credential(self) -> tuple[str, str] | None:
        """(user name, token) a build clones this SCM's repositories with over HTTPS; None
        when it clones without one (a repository on this disk, or no token configured)."""
        return None

    def mints_clone_credentials(self) -> bool:
        """Whether each build gets a credential of its own (`mint_clone_credential`) instead
        of the server's token (`clone_credential`)."""
        return False

    def mint_clone_credential(self, ref: RepoRef, *, name: str) -> MintedCredential:
        """Issue a short-lived credential that reads the one repository, called `name` where
        the SCM names them; ScmUnavailable when a retry may succeed, ScmError otherwise."""
        raise ScmError(f"{type(self).__name__} issues no credential of its own to a build.")

    def revoke_clone_credential(self, ref: RepoRef, credential: MintedCredential) -> None:
        """Revoke one credential `mint_clone_credential` issued (and nobody received)."""
        raise ScmError(f"{type(self).__name__} issues no credential of its own to a build.")

    def revoke_clone_credentials_named(self, ref: RepoRef, *, name: str) -> int:
        """Revoke every credential of the repository called `name`; return how many."""
        return 0

    def ssh_clone_url(self, ref: RepoRef) -> str | None:
        """Where a build clones the repository over SSH (with a deploy key); None: nowhere."""
        return None

    def pr_changed_files(self, ref: RepoRef, pr_num: int) -> list[str] | None:
        """Return every file a pull request changes against its base; None when unknown.

        None (too many files, or an SCM without pull requests) means that every job runs,
        sourcePaths or not; an SCM that cannot answer raises ScmError.
        """
        return None

    def post_check(self, ref: RepoRef, sha: str, check: CommitCheck) -> bool:
        """Show an extra status on a commit; False when this SCM has no commit statuses."""
        return False

    def write_pr_comment(self, ref: RepoRef, pr_num: int, body: str, *, comment_id: str) -> str:
        """Write `body` as a comment of pull request `pr_num`; return the comment's id.

        With a `comment_id` the comment is edited in place (posted anew if it was deleted);
        "" means this SCM has no pull request comments and nothing was written.
        """
        return ""
