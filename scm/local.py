"""Local git repositories on the server's disk, read with the git binary."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from scm.base import (
    CommitInfo,
    RepoRef,
    Scm,
    ScmError,
    branch_with_root,
    split_checkout_url,
)

GIT_TIMEOUT_SECONDS = 30
MAX_FILE_BYTES = 512 * 1024
HOOK_NAME = "post-receive"
HOOK_CONFIG_NAME = "screwdriver-hook.json"
HOOK_MARKER = "# screwdriver-py post-receive hook"
HOOK_NOTIFY_SCRIPT = Path(__file__).resolve().with_name("hook_notify.py")

_SHA_RE = re.compile(r"[0-9a-f]{40}", re.ASCII)
# What git's revision syntax gives a meaning to, and whitespace or control characters: a branch
# name holding any of these is invalid (git check-ref-format agrees) and must never reach
# rev-parse, which would resolve `main~1` or `main@{1}` to some other commit.
_REVISION_SYNTAX = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{")
_NULL_SHA = "0" * 40

# Variables that would point git at another repository than the one we name; they are set
# when the server itself runs under a git hook or a developer's shell exports them.
_REPO_ENV_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    "GIT_QUARANTINE_PATH",
)


def _git_env(repo: str) -> dict[str, str]:
    """Return the environment git runs with in `repo`: never prompts, never strays from it.

    No foreign GIT_DIR, and no search upwards: a stored repository path that has become a
    plain folder inside another repository must fail, not read the enclosing one.
    """
    env = {k: v for k, v in os.environ.items() if k not in _REPO_ENV_VARS}
    env["GIT_CEILING_DIRECTORIES"] = os.path.dirname(os.path.realpath(repo.rstrip("/") or "/"))
    env["GIT_TERMINAL_PROMPT"] = "0"
    # Pathspecs are user input; literal means "*" or ":(glob)" match only themselves.
    env["GIT_LITERAL_PATHSPECS"] = "1"
    env["LC_ALL"] = "C"  # stable error messages to recognise below
    return env


def _run_git(
    repo: str, args: list[str], *, check: bool = True, timeout: float = GIT_TIMEOUT_SECONDS
) -> subprocess.CompletedProcess[bytes]:
    """Run git in repo with an argv list; raise ScmError on timeout or (if check) failure."""
    try:
        proc = subprocess.run(
            ["git", "-C", repo, *args],
            capture_output=True,
            env=_git_env(repo),
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ScmError(
            f"git took longer than {timeout:g} s reading {repo}; check the repository and retry."
        ) from exc
    except FileNotFoundError as exc:
        raise ScmError("The git program is not installed on the server; install git.") from exc
    if check and proc.returncode != 0:
        raise ScmError(_describe_failure(repo, proc.stderr))
    return proc


def _describe_failure(repo: str, stderr: bytes) -> str:
    """Turn git's stderr into one user-facing sentence."""
    text = stderr.decode("utf-8", "replace").strip()
    if "dubious ownership" in text:
        return (
            f"{repo} is owned by another user, so git refuses to read it; "
            f"run `git config --global --add safe.directory {repo}` as the server's user."
        )
    first = text.splitlines()[0] if text else "no error message"
    return f"git failed on {repo} ({first}); check that the repository is readable."


def _check_sha(sha: str) -> str:
    """Return sha in lower case if it is a full 40-hex object name, else raise ScmError."""
    lowered = sha.lower()
    if not _SHA_RE.fullmatch(lowered):
        raise ScmError(f"{sha!r} is not a full commit sha; give all 40 hexadecimal digits.")
    return lowered


def _check_path(path: str) -> str:
    """Return a repository-relative path in git's form, or raise ScmError."""
    cleaned = path.strip().removeprefix("./")
    parts = cleaned.split("/")
    if not cleaned or cleaned.startswith("/") or "\0" in cleaned or ".." in parts or "" in parts:
        raise ScmError(f"{path!r} is not a file path inside the repository; use a path like a/b.")
    return cleaned


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Write data to path atomically, never readable by others even for an instant."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalGitScm(Scm):
    """Bare or non-bare git repositories on the server's own filesystem."""

    scm_context = "local"

    @staticmethod
    def location_of(url: str) -> str:
        """The absolute path a local checkout URL names, read without touching the disk."""
        location = url.strip().partition("#")[0]
        if location.startswith("file:"):
            parts = urlsplit(location)
            if parts.netloc not in ("", "localhost") or parts.query:
                raise ScmError(
                    f"{url!r} is not a local file URL; write it as file:///abs/path/repo.git#branch."
                )
            path = unquote(parts.path)
        else:
            path = location
        if not path.startswith("/"):
            raise ScmError(
                f"{url!r} is not an absolute path; write it as /abs/path/repo.git#branch."
            )
        return path

    def parse_url(self, url: str) -> RepoRef:
        """Accept file:///abs/repo.git#branch:path or /abs/repo.git#branch:path.

        The branch defaults to HEAD's; `:path` (a folder of the repository) is optional.
        """
        _, branch, root_dir = split_checkout_url(url)
        repo_path = self._repository_root(self.location_of(url))
        if not branch:
            branch = self._default_branch(repo_path)
        self._check_branch(repo_path, branch)
        return self._ref(repo_path, branch, root_dir)

    def stored_ref(self, checkout_url: str) -> RepoRef:
        """The ref of a file:///abs/repo.git#branch[:path] URL parse_url wrote, without git."""
        _, branch, root_dir = split_checkout_url(checkout_url)
        if not branch:
            return self.parse_url(checkout_url)
        # The URL may have been edited since it was stored (the admin): still never let git
        # read the branch as revision syntax or an option.
        if branch.startswith("-") or _REVISION_SYNTAX.search(branch):
            raise ScmError(f"{branch!r} is not a valid branch name; check the part after '#'.")
        return self._ref(self.location_of(checkout_url), branch, root_dir)

    def _ref(self, repo_path: str, branch: str, root_dir: str) -> RepoRef:
        name = Path(repo_path).name.removesuffix(".git") or Path(repo_path).name
        fragment = branch_with_root(branch, root_dir)
        return RepoRef(
            scm_context=self.scm_context,
            scm_uri=f"local:{repo_path}:{fragment}",
            repo_path=repo_path,
            branch=branch,
            name=name,
            checkout_url=f"file://{quote(repo_path)}#{fragment}",
            root_dir=root_dir,
        )

    def head_sha(self, ref: RepoRef) -> str:
        """Return the sha the branch points at now."""
        proc = _run_git(
            ref.repo_path,
            ["rev-parse", "--verify", "--quiet", f"refs/heads/{ref.branch}^{{commit}}"],
            check=False,
        )
        sha = proc.stdout.decode("ascii", "replace").strip()
        if proc.returncode != 0 and not os.path.isdir(ref.repo_path):
            raise ScmError(f"{ref.repo_path} does not exist or is not a directory; check the path.")
        if proc.returncode != 0 and b"dubious ownership" in proc.stderr:
            raise ScmError(_describe_failure(ref.repo_path, proc.stderr))
        if proc.returncode != 0 or not _SHA_RE.fullmatch(sha):
            raise ScmError(
                f"Branch {ref.branch!r} does not exist in {ref.repo_path}; "
                "push a commit to it or pick another branch."
            )
        return sha

    def read_file(self, ref: RepoRef, sha: str, path: str) -> bytes | None:
        """Return the file's bytes at sha, None if absent; ScmError if over MAX_FILE_BYTES.

        A tree's or blob's name is refused; an annotated tag's reads the commit it points at.
        """
        sha = _check_sha(sha)
        git_path = _check_path(path)
        # `^{commit}` makes git refuse a tree, blob or tag name in the same call.
        listing = _run_git(
            ref.repo_path,
            ["ls-tree", "-z", "--long", "--full-tree", f"{sha}^{{commit}}", "--", git_path],
            check=False,
        )
        if listing.returncode != 0:
            raise self._not_a_commit(ref, sha, listing.stderr)
        entry = self._find_entry(listing.stdout, git_path)
        if entry is None:
            return None
        mode, kind, oid, size = entry
        # Directories, submodules and symlinks are not files we can read config from.
        if kind != "blob" or mode == "120000":
            return None
        if size > MAX_FILE_BYTES:
            raise ScmError(
                f"{git_path} is {size} bytes at {sha[:12]}, over the {MAX_FILE_BYTES} byte limit; "
                "make it smaller."
            )
        data = self._read_blob(ref.repo_path, oid)
        # The size check above trusts ls-tree; the capped read is the guarantee.
        if len(data) > MAX_FILE_BYTES:
            raise ScmError(
                f"{git_path} is over the {MAX_FILE_BYTES} byte limit at {sha[:12]}; "
                "make it smaller."
            )
        return data

    def commit_info(self, ref: RepoRef, sha: str) -> CommitInfo:
        """Return author, message and committer time of a commit."""
        sha = _check_sha(sha)
        proc = _run_git(
            ref.repo_path,
            [
                "log",
                "-1",
                "--no-show-signature",
                "--encoding=UTF-8",
                "--format=%H%x00%an%x00%ae%x00%ct%x00%B",
                f"{sha}^{{commit}}",
                "--",
            ],
            check=False,
        )
        if proc.returncode != 0:
            raise self._not_a_commit(ref, sha, proc.stderr)
        fields = proc.stdout.decode("utf-8", "replace").split("\0", 4)
        if len(fields) != 5:
            raise ScmError(
                f"git printed an unexpected commit record for {sha}; check git's version."
            )
        full_sha, author_name, author_email, timestamp, message = fields
        if full_sha != sha:
            # A tag's name peels to the commit it points at; only a commit's own name is asked.
            raise self._not_a_commit(ref, sha, b"")
        return CommitInfo(
            sha=full_sha,
            message=message.strip(),
            author_name=author_name,
            author_email=author_email,
            committed_at=datetime.fromtimestamp(int(timestamp), tz=UTC),
            # A local repository has no web page for a commit.
            url="",
        )

    def changed_files(self, ref: RepoRef, since: str, sha: str) -> list[str]:
        """The paths that differ between `since` and `sha`; the commit's own changes without one.

        A push can carry several commits, so the diff is taken from the head we saw before
        (also after a force push, where it is the difference between the two trees). When that
        head is unknown or gone, the new commit's own changes against its first parent stand in.
        """
        sha = self._require_commit(ref, sha)
        base = ""
        if since:
            with contextlib.suppress(ScmError):
                base = self._require_commit(ref, since)
        if base:
            args = ["diff", "--no-renames", "--name-only", "-z", base, sha, "--"]
        else:
            args = ["diff-tree", "--root", "-m", "--first-parent", "--no-commit-id", "-r", "-z"]
            args += ["--no-renames", "--name-only", sha, "--"]
        listing = _run_git(ref.repo_path, args).stdout
        return sorted({os.fsdecode(p) for p in listing.split(b"\0") if p})

    def install_hook(self, ref: RepoRef, *, notify_url: str, key: bytes) -> bool:
        """Write our post-receive hook and its config; False if a foreign hook is in the way."""
        if not notify_url.startswith(("http://", "https://")):
            raise ScmError(f"{notify_url!r} is not an http(s) URL; set the server's public URL.")
        hooks_dir = self.hooks_dir(ref)
        hook_path = hooks_dir / HOOK_NAME
        config_path = hooks_dir / HOOK_CONFIG_NAME
        if hook_path.exists() or hook_path.is_symlink():
            try:
                existing = hook_path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                existing = ""
            if HOOK_MARKER not in existing:
                return False
        try:
            # The repository is its owner's, not the server's: its usual modes, not ours.
            hooks_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
            config = {"notify_url": notify_url, "key": key.hex(), "repository": ref.repo_path}
            _write_private(config_path, json.dumps(config, indent=2).encode("utf-8"), 0o600)
            _write_private(hook_path, self._hook_script(config_path).encode("utf-8"), 0o755)
        except OSError as exc:
            raise ScmError(
                f"Could not write the push hook into {hooks_dir} ({exc.strerror}); "
                "give the server write access or rely on polling."
            ) from exc
        return True

    def hooks_dir(self, ref: RepoRef) -> Path:
        """Return the directory git runs this repository's hooks from (honours core.hooksPath)."""
        proc = _run_git(ref.repo_path, ["rev-parse", "--git-path", "hooks"])
        hooks = Path(os.fsdecode(proc.stdout.rstrip(b"\n")))
        return hooks if hooks.is_absolute() else Path(ref.repo_path) / hooks

    @staticmethod
    def _hook_script(config_path: Path) -> str:
        """Return the post-receive script; it always exits 0 so it can never fail a push."""
        python = shlex.quote(sys.executable)
        script = shlex.quote(str(HOOK_NOTIFY_SCRIPT))
        config = shlex.quote(str(config_path))
        return (
            "#!/bin/sh\n"
            f"{HOOK_MARKER} (written by the Screwdriver server; reinstalling replaces it)\n"
            "# Tells the server about this push; the server polls when this cannot reach it.\n"
            f"if [ -x {python} ] && [ -f {script} ]; then\n"
            f"  {python} -I {script} {config}\n"
            "else\n"
            '  echo "Screwdriver: could not run the notifier; polling will pick the push up."\n'
            "fi\n"
            "exit 0\n"
        )

    # -- helpers ---------------------------------------------------------------------------

    def _repository_root(self, path: str) -> str:
        """Return the canonical path of the repository at path, or raise ScmError."""
        resolved = os.path.realpath(path.rstrip("/") or "/")
        if not os.path.isdir(resolved):
            raise ScmError(f"{path} does not exist or is not a directory; check the path.")
        proc = _run_git(
            resolved,
            ["rev-parse", "--is-bare-repository", "--absolute-git-dir", "--show-toplevel"],
            check=False,
        )
        lines = proc.stdout.decode("utf-8", "replace").splitlines()
        if proc.returncode != 0 and b"dubious ownership" in proc.stderr:
            raise ScmError(_describe_failure(resolved, proc.stderr))
        # A bare repository prints no top level (and older git exits non-zero for it).
        candidates = {os.path.realpath(line) for line in lines[1:3] if line.startswith("/")}
        # Git searches parent directories too; a plain folder inside some other repository is
        # not itself a repository, so the path must be that repository's root or git dir.
        if not lines or resolved not in candidates:
            raise ScmError(
                f"{path} is not a git repository; give the path of a bare repository or of a "
                "working copy's top directory."
            )
        return resolved

    def _default_branch(self, repo_path: str) -> str:
        """Return the branch HEAD names, even when it has no commits yet."""
        proc = _run_git(repo_path, ["symbolic-ref", "--quiet", "--short", "HEAD"], check=False)
        branch = proc.stdout.decode("utf-8", "replace").strip()
        if proc.returncode != 0 or not branch:
            raise ScmError(
                f"{repo_path} has a detached HEAD, so there is no default branch; "
                "add #branch to the URL."
            )
        return branch

    def _check_branch(self, repo_path: str, branch: str) -> None:
        """Raise ScmError unless branch is a valid name that exists in the repository.

        One git call in the common case: names that revision syntax could read as something else
        (``main~1``, ``main@{1}``, ``a..b``) are refused before git sees them, and git's own
        ``check-ref-format`` runs only to tell an invalid name from a missing branch.
        """
        if branch.startswith("-") or _REVISION_SYNTAX.search(branch):
            raise ScmError(f"{branch!r} is not a valid branch name; check the part after '#'.")
        exists = _run_git(
            repo_path,
            ["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"],
            check=False,
        )
        if exists.returncode == 0:
            return
        valid = _run_git(repo_path, ["check-ref-format", f"refs/heads/{branch}"], check=False)
        if valid.returncode != 0:
            raise ScmError(f"{branch!r} is not a valid branch name; check the part after '#'.")
        raise ScmError(
            f"Branch {branch!r} does not exist in {repo_path}; "
            "push a commit to it or pick another branch."
        )

    def _require_commit(self, ref: RepoRef, sha: str) -> str:
        """Return sha if it names a commit in the repository, else raise ScmError."""
        sha = _check_sha(sha)
        proc = _run_git(ref.repo_path, ["cat-file", "-t", sha], check=False)
        if proc.returncode != 0 or proc.stdout.strip() != b"commit":
            raise self._not_a_commit(ref, sha, proc.stderr)
        return sha

    @staticmethod
    def _not_a_commit(ref: RepoRef, sha: str, stderr: bytes) -> ScmError:
        """The error for a sha that names no commit here (or git's own, if it refused to read)."""
        if b"dubious ownership" in stderr:
            return ScmError(_describe_failure(ref.repo_path, stderr))
        return ScmError(
            f"Commit {sha} is not in {ref.repo_path}; push it or pick an existing commit."
        )

    @staticmethod
    def _find_entry(listing: bytes, git_path: str) -> tuple[str, str, str, int] | None:
        """Return (mode, type, oid, size) of the ls-tree entry exactly at git_path, if any."""
        wanted = os.fsencode(git_path)
        for record in listing.split(b"\0"):
            meta, tab, name = record.partition(b"\t")
            if not tab or name != wanted:
                continue
            mode, kind, oid, size = meta.decode("ascii").split()
            return mode, kind, oid, int(size) if size.isdigit() else 0
        return None

    @staticmethod
    def _read_blob(repo_path: str, oid: str) -> bytes:
        """Read at most MAX_FILE_BYTES + 1 bytes of a blob, so oversize is detectable but cheap."""
        with subprocess.Popen(
            ["git", "-C", repo_path, "cat-file", "blob", _check_sha(oid)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=_git_env(repo_path),
        ) as proc:
            # A blocking read has no timeout of its own; killing git ends it.
            timer = threading.Timer(GIT_TIMEOUT_SECONDS, proc.kill)
            timer.start()
            try:
                assert proc.stdout is not None
                data = proc.stdout.read(MAX_FILE_BYTES + 1)
                proc.stdout.close()  # git may still be writing an oversize blob: let it stop
                returncode = proc.wait()
            finally:
                timer.cancel()
        if len(data) <= MAX_FILE_BYTES and returncode != 0:
            raise ScmError(
                f"git could not read object {oid} in {repo_path}; check the repository and retry."
            )
        return data
