"""GitHub (and GitHub Enterprise) repositories, read through GitHub's REST API with httpx."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from django.conf import settings

from scm.base import (
    CommitCheck,
    CommitInfo,
    MintedCredential,
    RepoRef,
    Scm,
    ScmError,
    ScmTokenRejected,
    ScmUnavailable,
    branch_with_root,
    paged_file_names,
    split_checkout_url,
    tls_context,
)
from scm.github_app import app_configured, app_jwt

TIMEOUT_SECONDS = 10.0
MAX_FILE_BYTES = 512 * 1024
# A pull request's files are read 100 a page; past this many pages they count as unknown, so
# every ~pr job runs (GitHub itself stops listing at 3000 files).
HOOK_EVENTS = ["push", "pull_request", "create", "release"]
# A meta.status check's state -> GitHub's commit status state.
_CHECK_STATES = {"SUCCESS": "success", "FAILURE": "failure", "PENDING": "pending"}

_NAME = r"[A-Za-z0-9_.-]+"
_HTTPS_RE = re.compile(rf"https://(?P<host>[^/@:]+)/(?P<owner>{_NAME})/(?P<repo>{_NAME}?)(\.git)?")
_SSH_RE = re.compile(rf"git@(?P<host>[^/@:]+):(?P<owner>{_NAME})/(?P<repo>{_NAME}?)(\.git)?")


def github_host() -> str:
    """Return the web host of the configured GitHub: github.com, or the Enterprise host."""
    host = urlsplit(settings.SD_GITHUB_API_URL).hostname or "github.com"
    return "github.com" if host == "api.github.com" else host


def is_github_url(url: str) -> bool:
    """Return True when url names a repository on the configured GitHub."""
    location = url.split("#", 1)[0]
    match = _HTTPS_RE.fullmatch(location) or _SSH_RE.fullmatch(location)
    return match is not None and match.group("host") == github_host()


def repo_prefix(full_name: str) -> str:
    """Return the scm_uri prefix shared by every pipeline of one repository."""
    return f"github:{github_host()}:{full_name.lower()}:"


def clone_base() -> str:
    """Return where the launcher clones from: https://github.com, or the Enterprise server."""
    api = urlsplit(settings.SD_GITHUB_API_URL)
    host = api.hostname or "api.github.com"
    if host == "api.github.com":
        return "https://github.com"
    # Enterprise serves git next to its API (https://HOST/api/v3): same scheme, host and port.
    port = f":{api.port}" if api.port else ""
    return f"{api.scheme or 'https'}://{host}{port}"


def full_name_of(ref: RepoRef) -> str:
    """Return "org/repo" of a parsed GitHub checkout URL."""
    return urlsplit(ref.repo_path).path.strip("/").removesuffix(".git")


class GitHubScm(Scm):
    """Repositories on GitHub, addressed as https://github.com/org/repo.git#branch."""

    scm_context = "github"

    def __init__(self, token: str | None = None) -> None:
        self.token = settings.SD_GITHUB_TOKEN if token is None else token

    # --- HTTP ------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        headers.update(kwargs.pop("headers", {}))
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            return httpx.request(
                method,
                settings.SD_GITHUB_API_URL + path,
                headers=headers,
                timeout=TIMEOUT_SECONDS,
                verify=tls_context(),
                **kwargs,
            )
        except httpx.HTTPError as exc:
            raise ScmUnavailable(f"GitHub did not answer ({exc}); retry later.") from exc

    def _json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = self._request("GET", path, params=params)
        if response.status_code == 404:
            raise ScmError(
                f"GitHub has no {path}, or SD_GITHUB_TOKEN cannot read it: check the repository "
                "and give the token access to it."
            )
        if response.status_code >= 400:
            raise ScmError(f"GitHub refused {path} with {response.status_code}; check the token.")
        return response.json()

    # --- the Scm interface -----------------------------------------------------------------

    def parse_url(self, url: str) -> RepoRef:
        """Parse https://HOST/org/repo.git#branch:path or git@HOST:org/repo.git#branch:path.

        Without a branch, the repository's default one; `:path` (a folder) is optional.
        """
        location, branch, root_dir = split_checkout_url(url)
        match = _HTTPS_RE.fullmatch(location) or _SSH_RE.fullmatch(location)
        if match is None or match.group("host") != github_host():
            raise ScmError(
                f"{url} is not a {github_host()} repository URL: "
                f"use https://{github_host()}/org/repo.git#branch."
            )
        owner, repo = match.group("owner"), match.group("repo")
        full_name = f"{owner}/{repo}"
        if not branch:
            branch = str(self._json(f"/repos/{full_name}").get("default_branch") or "main")
        fragment = branch_with_root(branch, root_dir)
        return RepoRef(
            scm_context=f"github:{github_host()}",
            scm_uri=f"{repo_prefix(full_name)}{fragment}",
            # What the launcher clones; the REST API paths use full_name_of(ref).
            repo_path=f"{clone_base()}/{full_name}.git",
            branch=branch,
            name=repo,
            checkout_url=f"https://{github_host()}/{full_name}.git#{fragment}",
            root_dir=root_dir,
        )

    def head_sha(self, ref: RepoRef) -> str:
        """Return the sha the branch points at now."""
        return self.commit_sha(ref, f"heads/{ref.branch}")

    def commit_sha(self, ref: RepoRef, name: str) -> str:
        """Return the commit sha a branch or tag ("heads/x", "tags/v1") points at."""
        data = self._json(f"/repos/{full_name_of(ref)}/commits/{quote(name, safe='/')}")
        sha = str(data.get("sha", ""))
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            raise ScmError(f"GitHub gave no commit for {name} of {full_name_of(ref)}.")
        return sha

    def tag_sha(self, ref: RepoRef, tag: str) -> str:
        """Return the commit a tag points at (a create delivery names the tag only)."""
        return self.commit_sha(ref, f"tags/{tag}")

    def read_file(self, ref: RepoRef, sha: str, path: str) -> bytes | None:
        """Return a file's bytes at a commit through the contents API, None if absent."""
        response = self._request(
            "GET",
            f"/repos/{full_name_of(ref)}/contents/{quote(path)}",
            params={"ref": sha},
            headers={"Accept": "application/vnd.github.raw+json"},
        )
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise ScmError(f"GitHub refused to read {path} ({response.status_code}).")
        if len(response.content) > MAX_FILE_BYTES:
            raise ScmError(f"{path} is larger than {MAX_FILE_BYTES // 1024} KiB.")
        return response.content

    def commit_info(self, ref: RepoRef, sha: str) -> CommitInfo:
        """Return author, message and time of a commit."""
        data = self._json(f"/repos/{full_name_of(ref)}/commits/{sha}")
        commit = data.get("commit") or {}
        author = commit.get("author") or {}
        try:
            when = datetime.fromisoformat(str(author.get("date", "")).replace("Z", "+00:00"))
        except ValueError:
            when = datetime.now(UTC)
        return CommitInfo(
            sha=str(data.get("sha", sha)),
            message=str(commit.get("message", "")),
            author_name=str(author.get("name", "")),
            author_email=str(author.get("email", "")),
            committed_at=when.astimezone(UTC),
            url=str(data.get("html_url", "")),
        )

    def pr_changed_files(self, ref: RepoRef, pr_num: int) -> list[str] | None:
        """Every file the pull request changes against its base (its whole diff, not a push).

        GET /repos/{o}/{r}/pulls/{n}/files, page by page; None past MAX_PR_FILE_PAGES pages.
        """
        path = f"/repos/{full_name_of(ref)}/pulls/{pr_num}/files"
        return paged_file_names(
            lambda page, per_page: self._json(path, params={"per_page": per_page, "page": page}),
            key="filename",
            error=f"GitHub answered {path} with something other than a list of files; retry later.",
        )

    def post_status(
        self, ref: RepoRef, sha: str, *, state: str, context: str, description: str, target_url: str
    ) -> None:
        """Set a commit status (POST /repos/{o}/{r}/statuses/{sha})."""
        response = self._request(
            "POST",
            f"/repos/{full_name_of(ref)}/statuses/{sha}",
            json={
                "state": state,
                "context": context,
                "description": description[:140],
                "target_url": target_url,
            },
        )
        if response.status_code >= 400:
            raise ScmError(f"GitHub refused the commit status ({response.status_code}).")

    def post_check(self, ref: RepoRef, sha: str, check: CommitCheck) -> bool:
        """Post a meta.status check as a commit status of its own context."""
        self.post_status(
            ref,
            sha,
            state=_CHECK_STATES.get(check.state, "pending"),
            context=check.context,
            description=check.description,
            target_url=check.target_url,
        )
        return True

    def write_pr_comment(self, ref: RepoRef, pr_num: int, body: str, *, comment_id: str) -> str:
        """Edit comment `comment_id` (PATCH /repos/{o}/{r}/issues/comments/{id}), or post one
        on the pull request (POST /repos/{o}/{r}/issues/{n}/comments) when there is none."""
        repo = f"/repos/{full_name_of(ref)}/issues"
        if comment_id:
            edited = self._request(
                "PATCH", f"{repo}/comments/{quote(comment_id, safe='')}", json={"body": body}
            )
            if edited.status_code < 400:
                return str(edited.json().get("id") or comment_id)
            if edited.status_code != 404:
                raise ScmError(
                    f"GitHub refused to edit comment {comment_id} ({edited.status_code})."
                )
            # Someone deleted it: the summary gets a new one.
        posted = self._request("POST", f"{repo}/{pr_num}/comments", json={"body": body})
        if posted.status_code >= 400:
            raise ScmError(
                f"GitHub refused a comment on pull request {pr_num} ({posted.status_code})."
            )
        return str(posted.json().get("id") or "")

    def install_hook(self, ref: RepoRef, *, notify_url: str, key: bytes) -> bool:
        """Register the repository webhook (signed with SD_GITHUB_WEBHOOK_SECRET)."""
        # GitHub signs with the one server-wide secret, so the per-repository key is unused.
        if not settings.SD_GITHUB_WEBHOOK_SECRET or not self.token:
            return False
        response = self._request(
            "POST",
            f"/repos/{full_name_of(ref)}/hooks",
            json={
                "name": "web",
                "active": True,
                "events": HOOK_EVENTS,
                "config": {
                    "url": notify_url,
                    "content_type": "json",
                    "secret": settings.SD_GITHUB_WEBHOOK_SECRET,
                    "insecure_ssl": "0",
                },
            },
        )
        # 422 is "Hook already exists on this repository": the hook is there, which is the point.
        if response.status_code in (201, 422):
            return True
        raise ScmError(f"GitHub refused the webhook ({response.status_code}); check the token.")

    def clone_credential(self) -> tuple[str, str] | None:
        """The server's token: GitHub takes any token as the password of `x-access-token`."""
        return ("x-access-token", self.token) if self.token else None

    def mints_clone_credentials(self) -> bool:
        """With a GitHub App, each build clones with an installation token of its own."""
        return app_configured()

    def mint_clone_credential(self, ref: RepoRef, *, name: str) -> MintedCredential:
        """An installation token of the GitHub App that reads this one repository's contents
        and nothing else, for an hour (GitHub names none: `name` is unused).

        GET /repos/{o}/{r}/installation, then POST /app/installations/{id}/access_tokens,
        both as the app (its JWT).
        """
        full_name = full_name_of(ref)
        app = GitHubScm(app_jwt())
        found = app._request("GET", f"/repos/{full_name}/installation")
        if found.status_code == 404:
            raise ScmError(
                f"The GitHub App {settings.SD_GITHUB_APP_ID} is not installed on {full_name}: "
                "install it on the repository (or its organization) for builds to clone it."
            )
        installation = _app_answer(found, f"its installation on {full_name}").get("id")
        if not isinstance(installation, int):
            raise ScmUnavailable(f"GitHub answered without the app's installation on {full_name}.")
        issued = app._request(
            "POST",
            f"/app/installations/{installation}/access_tokens",
            json={
                "repositories": [full_name.split("/", 1)[1]],
                "permissions": {"contents": "read"},
            },
        )
        answer = _app_answer(issued, f"a token to read {full_name}")
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise ScmUnavailable(f"GitHub answered without a token to read {full_name}.")
        return MintedCredential(
            username="x-access-token", password=token, expires_at=_when(answer.get("expires_at"))
        )

    def revoke_clone_credential(self, ref: RepoRef, credential: MintedCredential) -> None:
        """Revoke an installation token nobody received (DELETE /installation/token, as it)."""
        response = GitHubScm(credential.password)._request("DELETE", "/installation/token")
        # 401: it was revoked or expired already.
        if response.status_code not in (204, 401):
            raise ScmError(f"GitHub refused to revoke a token ({response.status_code}).")

    def ssh_clone_url(self, ref: RepoRef) -> str | None:
        """git@HOST:org/repo.git (GitHub's SSH, on port 22)."""
        return f"git@{github_host()}:{full_name_of(ref)}.git"

    def is_private(self, ref: RepoRef) -> bool:
        """Return GitHub's `private` flag of the repository (read with the server's token)."""
        return self._json(f"/repos/{full_name_of(ref)}").get("private") is not False

    def user_role(self, ref: RepoRef, token: str) -> str | None:
        """The role GitHub's repository permissions give the token's holder, None for none."""
        response = GitHubScm(token)._request("GET", f"/repos/{full_name_of(ref)}")
        if response.status_code == 401:
            raise ScmTokenRejected("GitHub no longer accepts your sign-in: sign in again.")
        # A repository the person cannot see grants nothing.
        if response.status_code in (403, 404):
            return None
        if response.status_code >= 400:
            raise ScmError(
                f"GitHub refused to say who may use {full_name_of(ref)} "
                f"({response.status_code}); retry later."
            )
        repository = response.json()
        permissions = repository.get("permissions") or {}
        # GitHub's five levels onto Screwdriver's three: only repository admins administer
        # the pipeline; maintainers push; triagers read.
        if permissions.get("admin"):
            return "admin"
        if permissions.get("maintain") or permissions.get("push"):
            return "push"
        if permissions.get("triage"):
            return "pull"
        # GitHub grants pull on a public repository to everyone: that is no role here, or it
        # would override a pipeline admin's settings.public = false.
        if permissions.get("pull") and repository.get("private") is True:
            return "pull"
        return None


def _app_answer(response: httpx.Response, what: str) -> dict[str, Any]:
    """The JSON object of an answer to the GitHub App, or a one-sentence ScmError."""
    if response.status_code >= 500:
        raise ScmUnavailable(f"GitHub failed to give {what} ({response.status_code}); retry later.")
    if response.status_code in (401, 403):
        raise ScmError(
            f"GitHub refused to give the GitHub App {settings.SD_GITHUB_APP_ID} {what} "
            f"({response.status_code}): check SD_GITHUB_APP_ID, its private key, and that the "
            "app may read the repository's contents."
        )
    if response.status_code >= 400:
        raise ScmError(
            f"GitHub refused to give the GitHub App {settings.SD_GITHUB_APP_ID} {what} "
            f"({response.status_code})."
        )
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ScmUnavailable(f"GitHub answered something other than JSON for {what}.")
    return data


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None
