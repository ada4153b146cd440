"""django-allauth adapters: sign-in with GitHub and GitLab keeps the person's SCM token.

allauth is set not to store tokens (SOCIALACCOUNT_STORE_TOKENS = False: its table keeps them
in plain text); these hooks hand the token to `scm.rights.save_scm_token`, which encrypts it.
Accounts are made only through an SCM: local accounts come from admins and `sd_token`; who
may sign up or sign in through one is SD_SCM_ALLOWED_ORGS/_USERS' to say (`scm.allow_list`).
"""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialAccount, SocialApp, SocialLogin
from django.contrib import messages
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest
from django.shortcuts import redirect

from scm.allow_list import allow_list_is_set, may_sign_in
from scm.base import ScmError
from scm.rights import forget_scm_accounts, save_scm_token

ALLOWED_STATE = "sd_allowed_to_sign_in"


class LocalAccountAdapter(DefaultAccountAdapter):
    """No self-service sign-up with a password: local accounts are made by admins."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False


class ScmSocialAccountAdapter(DefaultSocialAccountAdapter):
    """Sign-up and sign-in through GitHub or GitLab, keeping the token encrypted."""

    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        # pre_social_login checked the allow-list and noted it in the login's server-side state;
        # a sign-up that did not pass there is closed whenever an allow-list is set.
        return not allow_list_is_set() or sociallogin.state.get(ALLOWED_STATE) is True

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
        # Checked at every sign-in, not only sign-up: someone who left the organization is out.
        _refuse_unless_allowed(request, sociallogin)
        # A known account signs in without save_user: refresh its token here.
        if sociallogin.is_existing:
            _keep_token(sociallogin)

    def save_user(self, request: HttpRequest, sociallogin: SocialLogin, form: Any = None) -> User:
        user: User = super().save_user(request, sociallogin, form)
        _keep_token(sociallogin)
        return user


def _scm_username(sociallogin: SocialLogin) -> str:
    data = sociallogin.account.extra_data or {}
    # GitHub calls the handle "login", GitLab "username".
    return str(data.get("login") or data.get("username") or sociallogin.user.get_username())


def _refuse_unless_allowed(request: HttpRequest, sociallogin: SocialLogin) -> None:
    provider = sociallogin.account.provider
    site = {"github": "GitHub", "gitlab": "GitLab"}.get(provider, provider)
    token = sociallogin.token.token if sociallogin.token is not None else ""
    try:
        allowed = may_sign_in(
            provider=provider, username=_scm_username(sociallogin), token=str(token)
        )
    except ScmError as exc:
        messages.error(request, f"Could not check who may sign in with {site}: {exc}")
        raise ImmediateHttpResponse(redirect("login")) from exc
    if not allowed:
        messages.error(
            request,
            f"Sign-in with {site} is open only to the organizations and people this server "
            "allows: ask its administrators to add you to SD_SCM_ALLOWED_ORGS or "
            "SD_SCM_ALLOWED_USERS.",
        )
        raise ImmediateHttpResponse(redirect("login"))
    sociallogin.state[ALLOWED_STATE] = True


def _keep_token(sociallogin: SocialLogin) -> None:
    account, token, user = sociallogin.account, sociallogin.token, sociallogin.user
    if token is None or not isinstance(user, User) or user.pk is None:
        return
    username = _scm_username(sociallogin)
    save_scm_token(user=user, provider=account.provider, username=username, token=token.token)


def forget_removed_account(*, socialaccount: SocialAccount, **_: Any) -> None:
    """allauth's social_account_removed: the token and roles of that SCM go with the account."""
    user = socialaccount.user
    if isinstance(user, User):
        forget_scm_accounts(user=user, provider=socialaccount.provider)
