"""Which SCM client serves a pipeline's scm_context or a checkout URL."""

from __future__ import annotations

from scm.base import Scm
from scm.github import GitHubScm, is_github_url
from scm.gitlab import GitLabScm, is_gitlab_url
from scm.local import LocalGitScm


def scm_of_context(scm_context: str) -> Scm:
    """The client of the SCM a pipeline's scm_context names ("github:host", "local", ...)."""
    if scm_context.startswith("github:"):
        return GitHubScm()
    if scm_context.startswith("gitlab:"):
        return GitLabScm()
    return LocalGitScm()


def scm_of_url(url: str) -> Scm:
    """The client of the SCM a checkout URL points at; anything else is a local repository."""
    if is_github_url(url):
        return GitHubScm()
    return GitLabScm() if is_gitlab_url(url) else LocalGitScm()
