"""Issuing a person's JWT: the user lookup that the pure signing in tokens.py leaves out."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model

from screwdriver_site.tokens import sign_user_token


def issue_user_token(*, username: str, is_admin: bool, now: datetime | None = None) -> str:
    """A person's JWT, tied to their sign-in generation and their current password."""
    user = (
        get_user_model()
        .objects.filter(username=username)
        .select_related("sign_in_generation")
        .first()
    )
    return sign_user_token(user, username=username, is_admin=is_admin, now=now)
