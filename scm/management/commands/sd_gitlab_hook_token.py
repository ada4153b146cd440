"""`sd_gitlab_hook_token GROUP/PROJECT`: print the secret token of one GitLab project's hook."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from scm.signing import gitlab_hook_token


class Command(BaseCommand):
    help = (
        "Print the X-Gitlab-Token a GitLab project's hook must carry (derived from "
        "SD_GITLAB_WEBHOOK_TOKEN and the project's path), for a hook set up by hand."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="the project's path, e.g. group/subgroup/repo")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.SD_GITLAB_WEBHOOK_TOKEN:
            raise CommandError(
                "SD_GITLAB_WEBHOOK_TOKEN is not set: set it first, as every hook token "
                "derives from it."
            )
        project = str(options["project"]).strip().strip("/").removesuffix(".git")
        if "/" not in project:
            raise CommandError(f"{project!r} is not a project path: give GROUP/PROJECT.")
        self.stdout.write(gitlab_hook_token(project))
