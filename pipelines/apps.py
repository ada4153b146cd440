from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def _revoke_on_sign_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Every sign-out (the web UI's, the API's, admin's) ends the person's JWTs too."""
    from pipelines.services import revoke_user_jwts

    if user is not None and getattr(user, "pk", None) is not None:
        revoke_user_jwts(user=user)


class PipelinesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "pipelines"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        user_logged_out.connect(_revoke_on_sign_out, dispatch_uid="sd-revoke-jwts-on-sign-out")
