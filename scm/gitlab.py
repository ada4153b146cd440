"""GitLab (gitlab.com or self-managed) repositories, read through its REST API v4 with httpx."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
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
from scm.signing import gitlab_hook_token

TIMEOUT_SECONDS = 10.0
MAX_FILE_BYTES = 512 * 1024
# A merge request's diffs are read 100 a page; past this many pages its files count as
# unknown, so every ~pr job runs.

# GitLab access levels (Guest 10, Reporter 20, Developer 30, Maintainer 40, Owner 50), mapped
# the way Screwdriver's scm-gitlab maps them; a guest may not even read the code.
_ROLES_BY_LEVEL: tuple[tuple[int, str], ...] = ((40, "admin"), (30, "push"), (20, "pull"))

# Build status -> (GitLab commit status state, description); anything else is pending.
_STATES: dict[str, tuple[str, str]] = {
    "SUCCESS": ("success", "The build passed."),
    "FAILURE": ("failed", "The build failed."),
    "UNSTABLE": ("failed", "The build is unstable."),
    "ABORTED": ("canceled", "The build was aborted."),
    "COLLAPSED": ("canceled", "A newer build of this job ran instead."),
    "RUNNING": ("running", "The build is running."),
}

# How long a build's deploy token lives at most: it is revoked when the build ends, and this
# is the backstop should that never happen.
DEPLOY_TOKEN_LIFETIME = timedelta(hours=1)
# A project's deploy tokens are listed 100 a page, this many pages at most, to find one by name.
MAX_DEPLOY_TOKEN_PAGES = 20

# A meta.status check's state -> GitLab's commit status state.
_CHECK_STATES = {"SUCCESS": "success", "FAILURE": "failed", "PENDING": "pending"}

# A group or project path segment as GitLab allows it; never "." or "..".
_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_PATH_RE = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})+")


def gitlab_base() -> str:
    """Return the web address of the configured GitLab, e.g. https://gitlab.com."""
    return str(settings.SD_GITLAB_URL).rstrip("/")


def gitlab_host() -> str:
    """Return host[:port] of the configured GitLab."""
    return urlsplit(gitlab_base()).netloc or "gitlab.com"


def _project_path(url: str) -> str | None:
    """Return "group/sub/repo" when url (without #branch) names a project on our GitLab."""
    base, host = gitlab_base(), gitlab_host()
    hostname = urlsplit(base).hostname or host
    rest: str | None = None
    if url.startswith(base + "/"):
        rest = url.removeprefix(base + "/")
    elif url.startswith(f"git@{hostname}:"):
        rest = url.removeprefix(f"git@{hostname}:")
    elif url.startswith(f"ssh://git@{hostname}/") or url.startswith(f"ssh://git@{host}/"):
        rest = url.split("/", 3)[3]
    if rest is None:
        return None
    path = rest.rstrip("/").removesuffix(".git")
    return path if _PATH_RE.fullmatch(path) else None


def is_gitlab_url(url: str) -> bool:
    """Return True when url names a repository on the configured GitLab."""
    return _project_path(url.split("#", 1)[0]) is not None


def repo_prefix(path_with_namespace: str) -> str:
    """Return the scm_uri prefix shared by every pipeline of one project."""
    return f"gitlab:{gitlab_host()}:{path_with_namespace.lower()}:"


def project_path_of(ref: RepoRef) -> str:
    """Return "group/sub/repo" of a parsed GitLab checkout URL."""
    return ref.repo_path.removeprefix(gitlab_base() + "/").removesuffix(".git")


class GitLabScm(Scm):
    """Projects on GitLab, addressed as https://HOST/group/subgroup/repo.git#branch."""

    scm_context = "gitlab"

    def __init__(self, token: str | None = None) -> None:
        self.token = settings.SD_GITLAB_TOKEN if token is None else token

    # --- HTTP ------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers: dict[str, str] = {}
        bearer = self.token if token is None else token
        if bearer:
            # GitLab takes personal, project and OAuth tokens alike as a Bearer token.
            headers["Authorization"] = f"Bearer {bearer}"
        try:
            return httpx.request(
                method,
                f"{gitlab_base()}/api/v4{path}",
                headers=headers,
                timeout=TIMEOUT_SECONDS,
                verify=tls_context(),
                **kwargs,
            )
        except httpx.HTTPError as exc:
            raise ScmUnavailable(f"GitLab did not answer ({exc}); retry later.") from exc

    def _json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = self._request("GET", path, params=params)
        if response.status_code == 404:
            raise ScmError(
                f"GitLab has no {path}, or SD_GITLAB_TOKEN cannot read it: check the repository "
                "and give the token access to it."
            )
        if response.status_code >= 400:
            raise ScmError(f"GitLab refused {path} with {response.status_code}; check the token.")
        return response.json()

    @staticmethod
    def _project(path_with_namespace: str) -> str:
        # GitLab takes a project's URL-encoded path wherever it takes its numeric id.
        return "/projects/" + quote(path_with_namespace, safe="")

    # --- the Scm interface -----------------------------------------------------------------

    def parse_url(self, url: str) -> RepoRef:
        """Parse https://HOST/group/repo.git#branch:path or git@HOST:group/repo.git#branch:path.

        Without a branch, the project's default one; `:path` (a folder) is optional.
        """
        location, branch, root_dir = split_checkout_url(url)
        path = _project_path(location)
        if path is None:
            raise ScmError(
                f"{url} is not a {gitlab_host()} repository URL: "
                f"use {gitlab_base()}/group/repo.git#branch."
            )
        if not branch:
            branch = str(self._json(self._project(path)).get("default_branch") or "main")
        fragment = branch_with_root(branch, root_dir)
        return RepoRef(
            scm_context=f"gitlab:{gitlab_host()}",
            scm_uri=f"{repo_prefix(path)}{fragment}",
            # What the launcher clones; the REST API paths use project_path_of(ref).
            repo_path=f"{gitlab_base()}/{path}.git",
            branch=branch,
            name=path.rsplit("/", 1)[1],
            checkout_url=f"{gitlab_base()}/{path}.git#{fragment}",
            root_dir=root_dir,
        )

    def head_sha(self, ref: RepoRef) -> str:
        """Return the sha the branch points at now."""
        return self.commit_sha(ref, ref.branch)

    def commit_sha(self, ref: RepoRef, name: str) -> str:
        """Return the commit sha a branch or tag name points at."""
        project = self._project(project_path_of(ref))
        data = self._json(f"{project}/repository/commits/{quote(name, safe='')}")
        sha = str(data.get("id", ""))
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            raise ScmError(f"GitLab gave no commit for {name} of {project_path_of(ref)}.")
        return sha

    def read_file(self, ref: RepoRef, sha: str, path: str) -> bytes | None:
        """Return a file's bytes at a commit through the raw file API, None if absent."""
        project = self._project(project_path_of(ref))
        response = self._request(
            "GET", f"{project}/repository/files/{quote(path, safe='')}/raw", params={"ref": sha}
        )
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise ScmError(f"GitLab refused to read {path} ({response.status_code}).")
        if len(response.content) > MAX_FILE_BYTES:
            raise ScmError(f"{path} is larger than {MAX_FILE_BYTES // 1024} KiB.")
        return response.content

    def commit_info(self, ref: RepoRef, sha: str) -> CommitInfo:
        """Return author, message and time of a commit."""
        project = self._project(project_path_of(ref))
        data = self._json(f"{project}/repository/commits/{quote(sha, safe='')}")
        try:
            when = datetime.fromisoformat(
                str(data.get("authored_date") or data.get("committed_date") or "")
            )
        except ValueError:
            when = datetime.now(UTC)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return CommitInfo(
            sha=str(data.get("id", sha)),
            message=str(data.get("message", "")),
            author_name=str(data.get("author_name", "")),
            author_email=str(data.get("author_email", "")),
            committed_at=when.astimezone(UTC),
            url=str(data.get("web_url", "")),
        )

    def pr_changed_files(self, ref: RepoRef, pr_num: int) -> list[str] | None:
        """Every file the merge request !pr_num changes against its target, by its new path.

        GET /projects/:id/merge_requests/:iid/diffs page by page (GitLab 15.7 and later);
        None past MAX_PR_FILE_PAGES pages.
        """
        path = f"{self._project(project_path_of(ref))}/merge_requests/{pr_num}/diffs"
        return paged_file_names(
            lambda page, per_page: self._json(path, params={"per_page": per_page, "page": page}),
            key="new_path",
            error=f"GitLab answered {path} with something other than a list of diffs; retry later.",
        )

    def post_build_status(
        self, ref: RepoRef, sha: str, *, build_status: str, context: str, target_url: str
    ) -> None:
        """Set the commit status of a build (POST /projects/:id/statuses/:sha)."""
        state, description = _STATES.get(build_status, ("pending", "The build is waiting to run."))
        project = self._project(project_path_of(ref))
        response = self._request(
            "POST",
            f"{project}/statuses/{sha}",
            json={
                "state": state,
                "name": context,
                "description": description[:255],
                "target_url": target_url,
            },
        )
        # GitLab refuses to set a status to the state it already has ("Cannot transition
        # status via :run from :running"); the commit shows the right state, so that is fine.
        if response.status_code == 400 and "Cannot transition status" in response.text:
            return
        if response.status_code >= 400:
            raise ScmError(f"GitLab refused the commit status ({response.status_code}).")

    def post_check(self, ref: RepoRef, sha: str, check: CommitCheck) -> bool:
        """Post a meta.status check as a commit status of its own name."""
        project = self._project(project_path_of(ref))
        response = self._request(
            "POST",
            f"{project}/statuses/{sha}",
            json={
                "state": _CHECK_STATES.get(check.state, "pending"),
                "name": check.context,
                "description": check.description[:255],
                "target_url": check.target_url,
            },
        )
        # Posting the state a status already has is refused; the commit shows it all the same.
        if response.status_code == 400 and "Cannot transition status" in response.text:
            return True
        if response.status_code >= 400:
            raise ScmError(f"GitLab refused the commit status ({response.status_code}).")
        return True

    def write_pr_comment(self, ref: RepoRef, pr_num: int, body: str, *, comment_id: str) -> str:
        """Edit note `comment_id` of merge request !pr_num, or add one when there is none
        (PUT or POST /projects/:id/merge_requests/:iid/notes)."""
        notes = f"{self._project(project_path_of(ref))}/merge_requests/{pr_num}/notes"
        if comment_id:
            edited = self._request(
                "PUT", f"{notes}/{quote(comment_id, safe='')}", json={"body": body}
            )
            if edited.status_code < 400:
                return str(edited.json().get("id") or comment_id)
            if edited.status_code != 404:
                raise ScmError(f"GitLab refused to edit note {comment_id} ({edited.status_code}).")
            # Someone deleted it: the summary gets a new one.
        posted = self._request("POST", notes, json={"body": body})
        if posted.status_code >= 400:
            raise ScmError(
                f"GitLab refused a note on merge request !{pr_num} ({posted.status_code})."
            )
        return str(posted.json().get("id") or "")

    def install_hook(self, ref: RepoRef, *, notify_url: str, key: bytes) -> bool:
        """Register (or refresh) the project hook, carrying the project's own token."""
        # GitLab sends the token back as is (no signature), so it is derived per project from
        # SD_GITLAB_WEBHOOK_TOKEN rather than taken from the local hooks' key.
        if not settings.SD_GITLAB_WEBHOOK_TOKEN or not self.token:
            return False
        project = self._project(project_path_of(ref))
        hook = {
            "url": notify_url,
            "token": gitlab_hook_token(project_path_of(ref)),
            "push_events": True,
            "tag_push_events": True,
            "merge_requests_events": True,
            "releases_events": True,
            "enable_ssl_verification": True,
        }
        # GitLab accepts the same hook twice, so look for ours first and update it in place.
        existing = self._request("GET", f"{project}/hooks", params={"per_page": 100})
        if existing.status_code >= 400:
            raise ScmError(
                f"GitLab refused to list the hooks of {project_path_of(ref)} "
                f"({existing.status_code}); the token needs Maintainer rights."
            )
        for current in existing.json():
            if isinstance(current, dict) and current.get("url") == notify_url:
                response = self._request("PUT", f"{project}/hooks/{current.get('id')}", json=hook)
                break
        else:
            response = self._request("POST", f"{project}/hooks", json=hook)
        if response.status_code in (200, 201):
            return True
        raise ScmError(f"GitLab refused the webhook ({response.status_code}); check the token.")

    def clone_credential(self) -> tuple[str, str] | None:
        """The server's token: GitLab takes an OAuth or access token as the password of
        `oauth2`."""
        return ("oauth2", self.token) if self.token else None

    def mints_clone_credentials(self) -> bool:
        """Unless the operator chose SD_GITLAB_CLONE_CREDENTIAL=operator-token, each build
        clones with a deploy token of its own, made with the server's token."""
        return bool(self.token) and settings.SD_GITLAB_CLONE_CREDENTIAL == "deploy-token"

    def mint_clone_credential(self, ref: RepoRef, *, name: str) -> MintedCredential:
        """A deploy token called `name` that reads the project's repository for an hour
        (POST /projects/:id/deploy_tokens, which needs the Maintainer role)."""
        path = project_path_of(ref)
        expires_at = datetime.now(UTC).replace(microsecond=0) + DEPLOY_TOKEN_LIFETIME
        response = self._request(
            "POST",
            f"{self._project(path)}/deploy_tokens",
            json={
                "name": name,
                "scopes": ["read_repository"],
                "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
            },
        )
        if response.status_code >= 500:
            raise ScmUnavailable(
                f"GitLab failed to make a deploy token for {path} ({response.status_code}); "
                "retry later."
            )
        if response.status_code in (401, 403, 404):
            raise ScmError(
                f"GitLab refused a deploy token for {path} ({response.status_code}): "
                "SD_GITLAB_TOKEN needs the Maintainer role on the project, or the operator "
                "may set SD_GITLAB_CLONE_CREDENTIAL=operator-token to clone with it instead."
            )
        if response.status_code >= 400:
            raise ScmError(f"GitLab refused a deploy token for {path} ({response.status_code}).")
        try:
            data = response.json()
        except ValueError:
            data = None
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(token, str) or not token:
            raise ScmUnavailable(f"GitLab answered without the deploy token for {path}.")
        return MintedCredential(
            username=str(data.get("username") or ""),
            password=token,
            expires_at=expires_at,
            token_id=str(data.get("id") or ""),
        )

    def revoke_clone_credential(self, ref: RepoRef, credential: MintedCredential) -> None:
        """Revoke one deploy token by its id (DELETE /projects/:id/deploy_tokens/:token_id)."""
        project = self._project(project_path_of(ref))
        token_id = quote(credential.token_id, safe="")
        response = self._request("DELETE", f"{project}/deploy_tokens/{token_id}")
        # 404: it is gone already.
        if response.status_code not in (204, 404):
            raise ScmError(
                f"GitLab refused to revoke deploy token {credential.token_id} of "
                f"{project_path_of(ref)} ({response.status_code})."
            )

    def revoke_clone_credentials_named(self, ref: RepoRef, *, name: str) -> int:
        """Revoke the project's deploy tokens called `name`, found by listing them (so no id
        needs to be kept); return how many."""
        path = project_path_of(ref)
        listed = f"{self._project(path)}/deploy_tokens"
        found: list[str] = []
        for page in range(1, MAX_DEPLOY_TOKEN_PAGES + 1):
            response = self._request("GET", listed, params={"per_page": 100, "page": page})
            if response.status_code >= 400:
                kind = ScmUnavailable if response.status_code >= 500 else ScmError
                raise kind(
                    f"GitLab refused to list the deploy tokens of {path} "
                    f"({response.status_code}); the token needs Maintainer rights."
                )
            tokens = response.json()
            if not isinstance(tokens, list):
                raise ScmUnavailable(f"GitLab answered the deploy tokens of {path} oddly.")
            found += [
                str(t.get("id"))
                for t in tokens
                if isinstance(t, dict) and t.get("name") == name and not t.get("revoked")
            ]
            if len(tokens) < 100:
                break
        for token_id in found:
            self.revoke_clone_credential(
                ref, MintedCredential(username="", password="", expires_at=None, token_id=token_id)
            )
        return len(found)

    def ssh_clone_url(self, ref: RepoRef) -> str | None:
        """git@HOST:group/repo.git (GitLab's SSH, on port 22)."""
        host = urlsplit(gitlab_base()).hostname or gitlab_host()
        return f"git@{host}:{project_path_of(ref)}.git"

    def is_private(self, ref: RepoRef) -> bool:
        """Return whether the project is not public (GitLab's `visibility`: internal, private)."""
        return self._json(self._project(project_path_of(ref))).get("visibility") != "public"

    def user_role(self, ref: RepoRef, token: str) -> str | None:
        """Return "admin", "push" or "pull" from the token holder's GitLab access level."""
        # Not cached here: scm.rights records the answer (SD_SCM_RIGHTS_CACHE_SECONDS).
        path = project_path_of(ref)
        response = self._request("GET", self._project(path), token=token)
        if response.status_code == 401:
            # GitLab's OAuth tokens expire after two hours.
            raise ScmTokenRejected("Your GitLab sign-in has expired: sign in again.")
        # A project the person cannot see grants nothing.
        if response.status_code in (403, 404):
            return None
        if response.status_code >= 400:
            raise ScmError(
                f"GitLab refused to say who may use {path} ({response.status_code}); retry later."
            )
        permissions = response.json().get("permissions") or {}
        level = max(
            int((permissions.get("project_access") or {}).get("access_level") or 0),
            int((permissions.get("group_access") or {}).get("access_level") or 0),
        )
        return next((name for floor, name in _ROLES_BY_LEVEL if level >= floor), None)
