from __future__ import annotations

from django.apps import AppConfig


class ScmConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "scm"

    def ready(self) -> None:
        from allauth.socialaccount.signals import social_account_removed

        from scm.adapters import forget_removed_account

        social_account_removed.connect(forget_removed_account)
