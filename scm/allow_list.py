"""Who may sign up and sign in through GitHub or GitLab: SD_SCM_ALLOWED_ORGS and _USERS.

With both empty anyone with an account on the configured GitHub/GitLab may sign up (a
server on a private GitHub Enterprise or GitLab needs nothing more); with either set, only
the users named and the members of the organizations (GitHub) or groups (GitLab) named, asked
with the person's own token at every sign-in.
"""

from __future__ import annotations

from typing import Any

import httpx
from django.conf import settings

from scm.base import ScmError, tls_context
from scm.gitlab import gitlab_base

TIMEOUT_SECONDS = 10.0
# Membership lists are read 100 a page; nobody needs more than 1000 organizations or groups.
PER_PAGE = 100
MAX_PAGES = 10


def allow_list_is_set() -> bool:
    return bool(settings.SD_SCM_ALLOWED_ORGS or settings.SD_SCM_ALLOWED_USERS)


def _named(entries: list[str], provider: str) -> set[str]:
    """The entries meant for this provider ("name", or "github:name"), lowercased."""
    names: set[str] = set()
    for entry in entries:
        scm, _, name = entry.rpartition(":")
        if scm in ("", provider):
            names.add(name.strip().strip("/").lower())
    return names


def may_sign_in(*, provider: str, username: str, token: str) -> bool:
    """Whether the allow-list admits this GitHub/GitLab person; ScmError when it cannot tell."""
    if not allow_list_is_set():
        return True
    if username.lower() in _named(settings.SD_SCM_ALLOWED_USERS, provider):
        return True
    allowed = _named(settings.SD_SCM_ALLOWED_ORGS, provider)
    if not allowed:
        return False
    if provider == "github":
        return not allowed.isdisjoint(_github_orgs(token))
    if provider == "gitlab":
        # A group admits the members of its subgroups too: GitLab lists the subgroup only.
        return any(
            group == name or group.startswith(name + "/")
            for group in _gitlab_groups(token)
            for name in allowed
        )
    return False


def _pages(url: str, token: str, params: dict[str, Any], site: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in range(1, MAX_PAGES + 1):
        try:
            response = httpx.get(
                url,
                params={**params, "per_page": PER_PAGE, "page": page},
                headers={"Authorization": f"Bearer {token}"},
                timeout=TIMEOUT_SECONDS,
                verify=tls_context(),
            )
        except httpx.HTTPError as exc:
            raise ScmError(f"{site} did not answer ({exc}); sign in again later.") from exc
        if response.status_code >= 400:
            raise ScmError(
                f"{site} refused to list your memberships ({response.status_code}); "
                "sign in again later."
            )
        data = response.json()
        if not isinstance(data, list):
            raise ScmError(f"{site} answered with something other than a list; sign in later.")
        items.extend(item for item in data if isinstance(item, dict))
        if len(data) < PER_PAGE:
            break
    return items


def _github_orgs(token: str) -> set[str]:
    """The logins of the person's GitHub organizations (GET /user/orgs, needs read:org)."""
    orgs = _pages(f"{settings.SD_GITHUB_API_URL}/user/orgs", token, {}, "GitHub")
    return {str(org.get("login", "")).lower() for org in orgs}


def _gitlab_groups(token: str) -> set[str]:
    """The full paths of the GitLab groups the person belongs to (Guest and up)."""
    groups = _pages(f"{gitlab_base()}/api/v4/groups", token, {"min_access_level": 10}, "GitLab")
    return {str(group.get("full_path", "")).lower() for group in groups}
