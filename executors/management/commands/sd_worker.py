"""`sd_worker`: a django-q2 worker cluster, with the periodic tasks scheduled first.

It runs beside the API or on a host of its own (docs/scaling.md). There it needs only the
database, Redis, the build outputs' storage, the secret key and the API's address
(`SD_API_URL`), which the launchers it starts report to; `SD_WORKER_REMOTE=true` makes it
refuse to start with settings that only work on the API's host.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from executors.registry import sandbox_notice
from screwdriver_site.schedules import ensure_periodic_tasks
from screwdriver_site.topology import check_worker

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Run a worker cluster (builds' start, stop and clean-up, webhooks, the reaper and the "
        "other periodic tasks) until interrupted."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        check = check_worker(
            remote=settings.SD_WORKER_REMOTE,
            api_url=settings.SD_API_URL,
            database_engine=settings.DATABASES["default"]["ENGINE"],
            secret_key_set=bool(os.environ.get("SD_SECRET_KEY")),
            redis_url=settings.REDIS_URL,
        )
        if check.errors:
            raise CommandError("This worker cannot start:\n- " + "\n- ".join(check.errors))
        for warning in check.warnings:
            self.stderr.write(warning)
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
        self.stdout.write(
            f"Worker on {settings.SD_HOSTNAME}: queue {settings.SD_QUEUE_NAME!r} "
            f"({settings.SD_QUEUE_BROKER}), builds report to {settings.SD_API_URL}."
        )
        call_command("qcluster")
