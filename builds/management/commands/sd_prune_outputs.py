"""`sd_prune_outputs`: delete artifacts and caches older than the retention period."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from builds.retention import describe, prune_outputs, retention_cutoff

BAR_WIDTH = 30


class Command(BaseCommand):
    help = (
        "Delete artifacts and caches older than SD_OUTPUTS_RETENTION_DAYS (or --days), and "
        "the stored files of pipelines, events, jobs and builds that no longer exist; a daily "
        "task does the same."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help=f"keep this many days, 0 for ever (default SD_OUTPUTS_RETENTION_DAYS, now "
            f"{settings.SD_OUTPUTS_RETENTION_DAYS})",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="say what would be deleted, delete nothing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = settings.SD_OUTPUTS_RETENTION_DAYS if options["days"] is None else options["days"]
        if days < 0:
            raise CommandError(f"--days must be 0 or more, not {days}.")
        before = retention_cutoff(days=days)
        verbosity = options["verbosity"]
        if before is None:
            if verbosity >= 1:
                self.stdout.write("Outputs are kept for ever (0 days): nothing to delete.")
            return
        dry_run = options["dry_run"]
        live_bar = verbosity >= 1 and self.stderr.isatty()

        def progress(done: int, total: int) -> None:
            # A bar redrawn in place on a terminal; one line per batch when asked for detail.
            filled = BAR_WIDTH * done // total
            text = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}"
            if live_bar:
                end = "\n" if done == total else ""
                self.stderr.write(f"\r{text}", style_func=str, ending=end)
                self.stderr.flush()
            elif verbosity >= 2:
                self.stderr.write(text, style_func=str)

        report = prune_outputs(before=before, dry_run=dry_run, progress=progress)
        if verbosity >= 1:
            since = before.isoformat(timespec="seconds")
            for line in describe(report, dry_run=dry_run):
                self.stdout.write(line)
            self.stdout.write(f"Kept everything used since {since} (the last {days} days).")
