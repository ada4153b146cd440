from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def ensure_schedules(**_: Any) -> None:
    """The daily task that deletes webhook deliveries past SD_WEBHOOK_RETENTION_DAYS."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name="sd-prune-deliveries",
        defaults={
            "func": "scm.tasks.prune_deliveries",
            "schedule_type": Schedule.DAILY,
            "repeats": -1,
        },
    )


class ScmConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "scm"

    def ready(self) -> None:
        post_migrate.connect(ensure_schedules, sender=self)
        from allauth.socialaccount.signals import social_account_removed

        from scm.adapters import forget_removed_account

        social_account_removed.connect(forget_removed_account)
