"""`sd_worker`: a django-q2 worker cluster, with the periodic tasks scheduled first."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import DatabaseError

from executors.registry import sandbox_notice
from screwdriver_site.schedules import ensure_periodic_tasks

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Run a worker cluster (builds' start, stop and clean-up, webhooks, the reaper and the "
        "other periodic tasks) until interrupted."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        # The intervals come from settings, which may have changed since the migration wrote
        # the schedules: a worker always starts with the current ones.
        try:
            names = ensure_periodic_tasks()
        except DatabaseError as exc:
            # The worker is still needed without them: builds wait on it. Say it, go on.
            logger.error("Could not schedule the periodic tasks (%s); starting anyway.", exc)
        else:
            self.stdout.write(f"Periodic tasks scheduled: {', '.join(names)}.")
        notice = sandbox_notice()
        if notice:
            self.stderr.write(notice)
        call_command("qcluster")
