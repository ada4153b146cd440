"""`sd_worker`: a django-q2 worker cluster, with the periodic tasks scheduled first."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand

from screwdriver_site.schedules import ensure_periodic_tasks


class Command(BaseCommand):
    help = (
        "Run a worker cluster (builds' start, stop and clean-up, webhooks, the reaper and the "
        "other periodic tasks) until interrupted."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        # The intervals come from settings, which may have changed since the migration wrote
        # the schedules: a worker always starts with the current ones.
        names = ensure_periodic_tasks()
        self.stdout.write(f"Periodic tasks scheduled: {', '.join(names)}.")
        call_command("qcluster")
