"""`sd_serve`: the ASGI server and the worker together, supervised; Ctrl-C stops everything.

With `--no-worker` it runs the ASGI server alone: an API host whose builds run on worker
hosts (`sd_worker`, docs/scaling.md).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from builds import services as build_services
from executors.supervisor import Child, Supervisor

logger = logging.getLogger("sd_serve")

STOPPED_MESSAGE = "The server stopped while this build ran; its teardown may not have finished."


def abort_builds(build_ids: list[int]) -> None:
    """End, as aborted, the builds whose launchers the stop had to kill."""
    for build_id in build_ids:
        try:
            build_services.abort_build(build_id=build_id, message=STOPPED_MESSAGE)
        except build_services.TransitionError:
            continue  # it had reported its end after all
        logger.info("Build %s aborted: the server stopped while it ran.", build_id)


class Command(BaseCommand):
    help = (
        "Run the ASGI server (daphne) and a worker until interrupted, restarting either if it "
        "dies. Ctrl-C or SIGTERM stops both and every running build within 10 seconds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.SD_PORT)
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="Run the ASGI server only; workers run elsewhere (manage.py sd_worker).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        python = sys.executable
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        web = Child(
            "web server",
            [
                python,
                "-m",
                # daphne, with credentials in query strings kept out of its access log
                "screwdriver_site.daphne_server",
                "-b",
                options["host"],
                "-p",
                str(options["port"]),
                "screwdriver_site.asgi:application",
            ],
        )
        worker = Child("worker", [python, manage, "sd_worker"])
        url = f"http://{options['host']}:{options['port']}"
        if options["no_worker"]:
            children = [web]
            self.stdout.write(f"Screwdriver's API starts at {url}; builds run on its workers.")
        else:
            children = [web, worker]
            self.stdout.write(
                f"Screwdriver starts at {url} "
                "(Ctrl-C stops the server, the worker and running builds)."
            )
        self.stdout.flush()
        supervisor = Supervisor(
            children,
            workspaces=Path(settings.SD_WORKSPACES_DIR),
            on_builds_killed=abort_builds,
        )
        if not supervisor.run():
            raise CommandError(supervisor.failed)
