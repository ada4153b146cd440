"""People who signed in with GitHub or GitLab, for tests that create SCM pipelines.

Only a repository's admins may create its pipeline, asked with their own token: the fakes of
`github_fakes.fake_github` and the GitLab tests' fakes answer "admin" to any token.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User

from scm.rights import save_scm_token


def repository_admin(username: str, provider: str = "github") -> User:
    """A person signed in with the SCM (a stored token) whom the fakes make repository admin."""
    user: User = get_user_model().objects.create_user(username)
    save_scm_token(user=user, provider=provider, username=username, token=f"tok-{username}")
    return user
