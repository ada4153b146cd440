"""django-allauth adapters: sign-in with GitHub and GitLab keeps the person's SCM token.

allauth is set not to store tokens (SOCIALACCOUNT_STORE_TOKENS = False: its table keeps them
in plain text); these hooks hand the token to `scm.rights.save_scm_token`, which encrypts it.
Accounts are made only through an SCM: local accounts come from admins and `sd_token`.
"""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp, SocialLogin
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest

from scm.rights import save_scm_token


class LocalAccountAdapter(DefaultAccountAdapter):
    """No self-service sign-up with a password: local accounts are made by admins."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False


class ScmSocialAccountAdapter(DefaultSocialAccountAdapter):
    """Sign-up and sign-in through GitHub or GitLab, keeping the token encrypted."""

    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return True

    def get_app(self, request: HttpRequest, provider: str, client_id: str | None = None) -> Any:
        try:
            return super().get_app(request, provider, client_id)
        except SocialApp.DoesNotExist:
            # The routes of every installed provider exist; an unconfigured one is not a 500.
            raise Http404(
                f"Sign-in with {provider} is not set up here: set its client id and secret."
            ) from None

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        super().pre_social_login(request, sociallogin)
        # A known account signs in without save_user: refresh its token here.
        if sociallogin.is_existing:
            _keep_token(sociallogin)

    def save_user(self, request: HttpRequest, sociallogin: SocialLogin, form: Any = None) -> User:
        user: User = super().save_user(request, sociallogin, form)
        _keep_token(sociallogin)
        return user


def _keep_token(sociallogin: SocialLogin) -> None:
    account, token, user = sociallogin.account, sociallogin.token, sociallogin.user
    if token is None or not isinstance(user, User) or user.pk is None:
        return
    data = account.extra_data or {}
    # GitHub calls the handle "login", GitLab "username".
    username = str(data.get("login") or data.get("username") or user.get_username())
    save_scm_token(user=user, provider=account.provider, username=username, token=token.token)
