"""Secrets and API tokens of pipelines and people."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from pipelines import encryption
from pipelines.models import Pipeline, Secret, SignInGeneration, Token
from pipelines.services.pipelines import PipelineError
from screwdriver_site.tokens import new_api_token_value

# --- secrets and tokens --------------------------------------------------------------------


def set_secret(*, pipeline: Pipeline, name: str, value: str, allow_in_pr: bool = False) -> Secret:
    secret, _ = Secret.objects.update_or_create(
        pipeline=pipeline,
        name=name,
        defaults={"encrypted_value": encryption.encrypt(value), "allow_in_pr": allow_in_pr},
    )
    return secret


@dataclass(frozen=True)
class NewToken:
    token: Token
    value: str


def create_user_token(*, user: User, name: str, description: str = "") -> NewToken:
    """A new API token for a user; the value exists only in the return value."""
    value = new_api_token_value()
    token = Token.objects.create(
        user=user, name=name, description=description, hash=Token.hash_value(value)
    )
    return NewToken(token=token, value=value)


# How old a token's `lastUsed` may be before a use writes it again.
LAST_USED_EVERY = timedelta(minutes=1)


def revoke_user_jwts(*, user: User) -> None:
    """Refuse every user JWT issued to this person so far (sign-out); API tokens stay valid."""
    with transaction.atomic():
        row, created = SignInGeneration.objects.get_or_create(user=user, defaults={"generation": 1})
        if not created:
            SignInGeneration.objects.filter(pk=row.pk).update(generation=F("generation") + 1)


def touch_token(token: Token) -> None:
    """Note that the token was used now: at most once a LAST_USED_EVERY, so that a script
    polling the API with it costs the database a write a minute, not one a request."""
    now = timezone.now()
    if token.last_used is not None and timedelta(0) <= now - token.last_used < LAST_USED_EVERY:
        return
    Token.objects.filter(pk=token.pk).update(last_used=now)
    token.last_used = now


def create_pipeline_token(*, pipeline: Pipeline, name: str, description: str = "") -> NewToken:
    """A new API token of a pipeline; the value exists only in the return value."""
    value = new_api_token_value()
    token = Token.objects.create(
        pipeline=pipeline, name=name, description=description, hash=Token.hash_value(value)
    )
    return NewToken(token=token, value=value)


def refresh_token(*, token: Token) -> NewToken:
    """Give a token a new value; the old one stops working at once."""
    value = new_api_token_value()
    Token.objects.filter(pk=token.pk).update(hash=Token.hash_value(value))
    token.hash = Token.hash_value(value)
    return NewToken(token=token, value=value)


def update_token(*, token: Token, name: str | None, description: str | None) -> Token:
    """Rename a token or change its description."""
    if name is not None:
        token.name = name
    if description is not None:
        token.description = description
    token.save(update_fields=["name", "description"])
    return token


def delete_token(*, token: Token) -> None:
    """Revoke a token: it stops working at once."""
    Token.objects.filter(pk=token.pk).delete()


# --- secrets -------------------------------------------------------------------------------


def delete_secret(*, secret: Secret) -> None:
    """Remove a secret; builds that list it no longer get it."""
    Secret.objects.filter(pk=secret.pk).delete()


def create_secret(*, pipeline: Pipeline, name: str, value: str, allow_in_pr: bool) -> Secret:
    """Add a secret; a second one of the same name is a conflict, not an overwrite."""
    try:
        with transaction.atomic():
            return Secret.objects.create(
                pipeline=pipeline,
                name=name,
                encrypted_value=encryption.encrypt(value),
                allow_in_pr=allow_in_pr,
            )
    except IntegrityError as exc:
        raise PipelineError(
            f"Secret {name} already exists in pipeline {pipeline.pk}: update it instead.",
            status=409,
        ) from exc


def update_secret(*, secret: Secret, value: str | None, allow_in_pr: bool | None) -> Secret:
    """Replace a secret's value or its allowInPR flag."""
    if value is not None:
        secret.encrypted_value = encryption.encrypt(value)
    if allow_in_pr is not None:
        secret.allow_in_pr = allow_in_pr
    secret.save(update_fields=["encrypted_value", "allow_in_pr"])
    return secret
