"""What `sd-setup-scm` runs: the git commands of a checkout, and how deep it clones.

Every command is an argv list; names from the launch spec and values from the job's
environment are single argv words, never shell text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Git's identity for the merge commit of a PR build, as Screwdriver's checkout configures it.
BOT_NAME = "sd-buildbot"
BOT_EMAIL = "dev-null@screwdriver.cd"
# Screwdriver's defaults: shallow, 50 commits, every branch's tip.
DEFAULT_SHALLOW_DEPTH = 50
# git reads a depth as a C int.
MAX_SHALLOW_DEPTH = 2**31 - 1
MAX_SHALLOW_SINCE_CHARS = 100
_SAFE_REF = re.compile(r"refs/[A-Za-z0-9._/-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class CheckoutError(Exception):
    """The checkout cannot run as asked; the message (one sentence) goes to the step's log."""


@dataclass(frozen=True)
class Checkout:
    """What `sd-setup-scm` clones and checks out; a PR build also merges its base branch."""

    url: str
    sha: str = ""
    branch: str = ""
    pr_number: int = 0
    pr_ref: str = ""  # where the SCM keeps the PR's head, e.g. refs/pull/7/head
    # "" for a repository anyone may read (or one on this disk); "token" or "sshKey" when
    # the launcher asks the API for a credential to clone with (credentials.py).
    auth: str = ""

    @property
    def is_pr(self) -> bool:
        """A pull request's build checks out the merge of the PR into its base branch."""
        return self.pr_number > 0

    @property
    def is_local(self) -> bool:
        """A repository on this disk (a path, or a file:// URL)."""
        return Path(self.url).is_absolute() or self.url.startswith("file:")

    @property
    def target(self) -> str:
        """What is checked out: the sha, else the branch's tip, else the remote's default."""
        return self.sha or (f"origin/{self.branch}" if self.branch else "HEAD")


@dataclass(frozen=True)
class Shallow:
    """How much history a clone takes: nothing here means all of it."""

    depth: list[str] = field(default_factory=list)  # --depth N, or --shallow-since=DATE
    branches: list[str] = field(default_factory=list)  # --no-single-branch, or --single-branch

    def __bool__(self) -> bool:
        return bool(self.depth)


def shallow_of(env: Mapping[str, str], checkout: Checkout) -> Shallow:
    """Screwdriver's GIT_SHALLOW_CLONE* variables, read from the job's environment.

    Shallow unless GIT_SHALLOW_CLONE is `false`; GIT_SHALLOW_CLONE_SINCE wins over
    GIT_SHALLOW_CLONE_DEPTH (default 50); every branch's tip unless
    GIT_SHALLOW_CLONE_SINGLE_BRANCH is `true`. A repository on this disk is cloned whole, as
    before: its objects are copied from the disk either way. Raises CheckoutError for a value
    git would misread.
    """
    if checkout.is_local or env.get("GIT_SHALLOW_CLONE", "").strip().lower() == "false":
        return Shallow()
    since = env.get("GIT_SHALLOW_CLONE_SINCE", "").strip()
    if since:
        if _CONTROL.search(since) or len(since) > MAX_SHALLOW_SINCE_CHARS:
            raise CheckoutError(
                f"GIT_SHALLOW_CLONE_SINCE must be a date like 2024-04-01 or '4 weeks ago' "
                f"(one line, at most {MAX_SHALLOW_SINCE_CHARS} characters): fix the job's "
                "environment."
            )
        depth = [f"--shallow-since={since}"]
    else:
        raw = env.get("GIT_SHALLOW_CLONE_DEPTH", "").strip() or str(DEFAULT_SHALLOW_DEPTH)
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_SHALLOW_DEPTH:
            raise CheckoutError(
                f"GIT_SHALLOW_CLONE_DEPTH must be a whole number of commits from 1 to "
                f"{MAX_SHALLOW_DEPTH}, not {raw!r}: fix the job's environment."
            )
        depth = ["--depth", str(int(raw))]
    single = env.get("GIT_SHALLOW_CLONE_SINGLE_BRANCH", "").strip().lower() == "true"
    return Shallow(depth, ["--single-branch" if single else "--no-single-branch"])


def refusal(checkout: Checkout) -> str:
    """Why the launch spec's checkout cannot run safely, or "" when it can."""
    target = checkout.target
    # Names arrive as data and go to git as single argv words, but a word that starts with
    # "-" would still be read as an option, and a ref must look like one.
    if target.startswith("-") or checkout.branch.startswith("-"):
        return f"Refusing to check out {target!r} of branch {checkout.branch!r}."
    if checkout.pr_ref and not _SAFE_REF.fullmatch(checkout.pr_ref):
        return f"Refusing to fetch the pull request ref {checkout.pr_ref!r}."
    if checkout.is_pr and not checkout.branch:
        return "A pull request build needs its base branch; the launch spec has none."
    if checkout.is_pr and not (checkout.sha or checkout.pr_ref):
        return "A pull request build needs its head sha or ref; the launch spec has neither."
    if checkout.auth and checkout.is_local:
        return "A repository on this disk is cloned without a credential; the spec asks for one."
    return ""


@dataclass(frozen=True)
class Plan:
    """The git commands of a checkout, in order."""

    # Commands that reach the remote: they alone get the clone credential.
    remote: list[list[str]]
    # Commands on the clone alone, run once the credential is gone.
    local: list[list[str]]
    # A shallow clone may lack the build's commit: fetch it by sha when it does, and the
    # whole history when the server will not send a commit by its sha.
    fetch_sha: list[str] | None = None
    unshallow: list[str] | None = None
    # The command whose failure means the PR does not merge into its base.
    merge: list[str] | None = None


class Commands:
    """Builds the argv of each git command of one checkout into `directory`."""

    def __init__(self, checkout: Checkout, directory: Path, shallow: Shallow) -> None:
        self.checkout = checkout
        self.directory = directory
        self.shallow = shallow

    def git(self, *args: str) -> list[str]:
        """A git command run in the clone."""
        return ["git", "-c", "advice.detachedHead=false", "-C", str(self.directory), *args]

    def clone(self, *branch: str) -> list[str]:
        """The clone itself, into an empty folder, without checking anything out."""
        checkout, shallow = self.checkout, self.shallow
        # A clone of a repository on this disk copies its objects: by default git hard-links
        # them, and a build could then rewrite the repository that later builds (and the
        # server) read. A URL's clone copies anyway.
        links = ["--no-local"] if Path(checkout.url).is_absolute() else []
        return [
            "git",
            "clone",
            "--no-checkout",
            *links,
            *shallow.depth,
            *shallow.branches,
            *branch,
            "--",
            checkout.url,
            str(self.directory),
        ]

    def plan(self) -> Plan:
        """The commands of a branch build, or of a PR build's merge."""
        checkout, shallow = self.checkout, self.shallow
        if checkout.is_pr:
            return self._pr_plan()
        # A shallow clone takes the branch's recent history, where the build's commit is
        # expected; one that lies deeper (a restart of an old build) is fetched by its sha.
        branch = ["--branch", checkout.branch] if shallow and checkout.branch else []
        fetch_sha = unshallow = None
        if shallow and checkout.sha:
            fetch_sha = self.git("fetch", "--no-tags", *shallow.depth, "origin", checkout.sha)
            unshallow = self.git("fetch", "--no-tags", "--unshallow", "origin")
        return Plan(
            remote=[self.clone(*branch)],
            local=[self.git("checkout", "--detach", checkout.target)],
            fetch_sha=fetch_sha,
            unshallow=unshallow,
        )

    def _pr_plan(self) -> Plan:
        # As Screwdriver's checkout: clone the base branch, fetch the PR's head into the local
        # branch "pr", then merge the base into it. The head is pinned to the event's sha so a
        # later push to the PR never changes what an earlier build tested. The PR's fetch is
        # not shallow: it brings the PR's commits down to what the base clone holds.
        checkout = self.checkout
        remote = [self.clone("--branch", checkout.branch)]
        if checkout.pr_ref:
            remote.append(self.git("fetch", "--no-tags", "origin", checkout.pr_ref))
        merge = self.git("merge", "--no-edit", f"refs/remotes/origin/{checkout.branch}")
        return Plan(
            remote=remote,
            local=[
                self.git("checkout", "-q", "-B", "pr", checkout.sha or "FETCH_HEAD"),
                self.git("config", "user.name", BOT_NAME),
                self.git("config", "user.email", BOT_EMAIL),
                merge,
            ],
            merge=merge,
        )


def conflict_message(checkout: Checkout, shallow: Shallow) -> str:
    """What to do when a PR does not merge into its base."""
    deeper = (
        " If the pull request is older than the shallow clone's history, set "
        "GIT_SHALLOW_CLONE_DEPTH higher (or GIT_SHALLOW_CLONE=false) in the job's environment."
        if shallow
        else ""
    )
    return (
        f"Pull request {checkout.pr_number} does not merge cleanly into {checkout.branch}: "
        f"merge {checkout.branch} into the pull request's branch (or rebase it), resolve "
        f"the conflicts and push again.{deeper}\n"
    )
