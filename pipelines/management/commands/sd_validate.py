"""`sd_validate FILE`: print what the validator returns for a screwdriver.yaml."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pipelines.config import parse_pipeline_yaml
from pipelines.template_store import database_pipeline_templates, database_templates


class Command(BaseCommand):
    help = "Parse a screwdriver.yaml (or - for stdin) and print the validator's JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["file"]
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(errors="replace")
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from exc
        result = parse_pipeline_yaml(
            text, templates=database_templates, pipeline_templates=database_pipeline_templates
        )
        self.stdout.write(json.dumps(result, indent=2))
        if result.get("errors"):
            sys.exit(1)
