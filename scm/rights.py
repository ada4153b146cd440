"""A person's rights on GitHub and GitLab pipelines, from the SCM token they signed in with.

Permission checks are model methods that never do network I/O, so the SCM's answer is
recorded as an ScmRole row; the request path calls `refresh_scm_role` first, which asks the
SCM again only when the recorded answer is older than SD_SCM_RIGHTS_CACHE_SECONDS. The row is
the cache: every process and worker shares it, and a new sign-in clears it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from pipelines.encryption import decrypt, encrypt
from pipelines.models import Pipeline
from scm.base import ScmError, ScmTokenRejected
from scm.clients import scm_of_context
from scm.github import github_host
from scm.gitlab import gitlab_host
from scm.models import ScmAccount, ScmRole

logger = logging.getLogger(__name__)

LOCAL_CONTEXT = "local"


def scm_context_of_provider(provider: str) -> str | None:
    """The scm_context of the pipelines an allauth provider's accounts live on."""
    if provider == "github":
        return f"github:{github_host()}"
    if provider == "gitlab":
        return f"gitlab:{gitlab_host()}"
    return None


@transaction.atomic
def save_scm_token(*, user: User, provider: str, username: str, token: str) -> ScmAccount | None:
    """Store (or replace) the person's token for the SCM behind `provider`, encrypted."""
    context = scm_context_of_provider(provider)
    if context is None or not token:
        return None
    account, _ = ScmAccount.objects.update_or_create(
        user=user,
        scm_context=context,
        defaults={"username": username, "encrypted_token": encrypt(token)},
    )
    # A new token may carry other rights (another account, other scopes): ask again.
    ScmRole.objects.filter(user=user, pipeline__scm_context=context).delete()
    return account


def scm_token_of(user: User, scm_context: str) -> str | None:
    """The person's decrypted token for an SCM, None when they never signed in with it."""
    encrypted = (
        ScmAccount.objects.filter(user=user, scm_context=scm_context)
        .values_list("encrypted_token", flat=True)
        .first()
    )
    return decrypt(encrypted) if encrypted else None


def refresh_scm_role(*, user: Any, pipeline: Pipeline) -> None:
    """Record the person's SCM role on the pipeline unless a recent enough answer is recorded."""
    if not isinstance(user, User) or not user.is_authenticated or user.is_superuser:
        return
    # A local pipeline never asks an SCM: its rights are the local ones only.
    if pipeline.scm_context == LOCAL_CONTEXT:
        return
    recorded = ScmRole.objects.filter(user=user, pipeline=pipeline)
    if recorded.fresh().exists():
        return
    try:
        token = scm_token_of(user, pipeline.scm_context)
        if token is None:
            # Without a stored token only local rights count.
            recorded.delete()
            return
        scm = scm_of_context(pipeline.scm_context)
        role = scm.user_role(scm.parse_url(pipeline.checkout_url), token)
    except ScmTokenRejected:
        forget_scm_token(user=user, scm_context=pipeline.scm_context)
        return
    except (ScmError, ValueError) as exc:
        # The stale answer stays recorded but grants nothing (ScmRole.objects.fresh()): an SCM
        # that cannot be reached never extends rights it may have taken away.
        logger.warning("No SCM role for %s on pipeline %s: %s", user, pipeline.pk, exc)
        return
    ScmRole.objects.update_or_create(
        user=user, pipeline=pipeline, defaults={"role": role or "", "checked_at": timezone.now()}
    )


@transaction.atomic
def forget_scm_token(*, user: User, scm_context: str) -> None:
    """Drop a token the SCM refused (expired or revoked) and every role it had given."""
    # The account row stays with an empty token, so pages can say the sign-in has expired.
    ScmAccount.objects.filter(user=user, scm_context=scm_context).update(encrypted_token="")
    ScmRole.objects.filter(user=user, pipeline__scm_context=scm_context).delete()


def expired_sign_in_message(user: Any, scm_context: str) -> str:
    """What to tell a person whose stored token the SCM refused since they signed in; else ""."""
    if not isinstance(user, User) or not user.is_authenticated or scm_context == LOCAL_CONTEXT:
        return ""
    refused = ScmAccount.objects.filter(user=user, scm_context=scm_context, encrypted_token="")
    if not refused.exists():
        return ""
    site = "GitLab" if scm_context.startswith("gitlab:") else "GitHub"
    return f"Your {site} sign-in has expired: sign in again."


def forget_scm_accounts(*, user: User, provider: str) -> None:
    """Forget the person's token and recorded roles for the SCM behind an allauth provider."""
    context = scm_context_of_provider(provider)
    if context is None:
        return
    ScmAccount.objects.filter(user=user, scm_context=context).delete()
    ScmRole.objects.filter(user=user, pipeline__scm_context=context).delete()
