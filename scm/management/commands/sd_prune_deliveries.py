"""`sd_prune_deliveries`: delete stored webhook deliveries older than the retention period."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from scm.retention import prune_deliveries, retention_cutoff


class Command(BaseCommand):
    help = (
        "Delete webhook deliveries older than SD_WEBHOOK_RETENTION_DAYS (or --days); "
        "a daily task does the same."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help=f"keep this many days (default SD_WEBHOOK_RETENTION_DAYS, now "
            f"{settings.SD_WEBHOOK_RETENTION_DAYS})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = settings.SD_WEBHOOK_RETENTION_DAYS if options["days"] is None else options["days"]
        if days < 0:
            raise CommandError(f"--days must be 0 or more, not {days}.")
        before = retention_cutoff(days=days)
        verbose = options["verbosity"] >= 1

        def progress(deleted: int) -> None:
            if options["verbosity"] >= 2:
                self.stdout.write(f"... {deleted} deleted so far")

        deleted = prune_deliveries(before=before, progress=progress)
        if verbose:
            self.stdout.write(
                f"Deleted {deleted} webhook deliveries received before "
                f"{before.isoformat(timespec='seconds')} (older than {days} days)."
            )
