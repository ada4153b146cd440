"""`sd_serve`: the ASGI server and the worker together; Ctrl-C stops both."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Run the ASGI server (daphne) and a django-q2 worker cluster until interrupted."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.SD_PORT)

    def handle(self, *args: Any, **options: Any) -> None:
        python = sys.executable
        children = [
            subprocess.Popen(
                [
                    python,
                    "-m",
                    "daphne",
                    "-b",
                    options["host"],
                    "-p",
                    str(options["port"]),
                    "screwdriver_site.asgi:application",
                ],
            ),
            subprocess.Popen([python, "manage.py", "qcluster"]),
        ]
        url = f"http://{options['host']}:{options['port']}"
        self.stdout.write(f"Screwdriver is up at {url} (Ctrl-C stops the server and the worker).")
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.5)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        self.stdout.write("Stopped.")
