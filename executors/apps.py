from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def ensure_schedules(**_: Any) -> None:
    """The periodic tasks every installation runs: the reaper and the repository poller."""
    from django.conf import settings
    from django_q.models import Schedule

    wanted = {
        "sd-reaper": ("executors.tasks.reap", settings.SD_REAPER_INTERVAL_MINUTES),
        "sd-scm-poll": ("executors.tasks.poll_repositories", settings.SD_SCM_POLL_MINUTES),
    }
    for name, (func, minutes) in wanted.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": Schedule.MINUTES,
                "minutes": max(1, minutes),
                "repeats": -1,
            },
        )


class ExecutorsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "executors"

    def ready(self) -> None:
        post_migrate.connect(ensure_schedules, sender=self)
