"""Reads of published build commands: lists, versions, tags and the version a reference picks."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Max, Q, QuerySet

from pipelines.config.job_template import version_key
from pipelines.models import Command, CommandTag
from pipelines.template_selectors import pick_published, published_tags, published_versions


def command_versions(namespace: str, name: str) -> QuerySet[Command]:
    """Every published version of one command, newest first."""
    return published_versions(Command, namespace, name)


def command_tags(namespace: str, name: str) -> QuerySet[CommandTag]:
    """One command's tags, by name."""
    return published_tags(CommandTag, namespace, name)


def pick_command(namespace: str, name: str, version_or_tag: str | None) -> Command | None:
    """The version ``ns/name@versionOrTag`` picks: a tag, ``1``/``1.2`` (highest), or exact."""
    return pick_published(Command, CommandTag, namespace, name, version_or_tag)


def search_commands(
    *, namespace: str | None = None, search: str | None = None
) -> QuerySet[Command]:
    """Commands filtered as ``GET /v4/commands`` filters them."""
    rows = Command.objects.select_related("pipeline")
    if namespace:
        rows = rows.filter(namespace=namespace)
    if search:
        words = Q(name__icontains=search) | Q(description__icontains=search)
        if not namespace:
            words |= Q(namespace__icontains=search)
        rows = rows.filter(words)
    return rows


@dataclass(frozen=True)
class CommandSummary:
    """One command on the list page: its newest version and how many versions it has."""

    command: Command
    versions: int


def command_summaries() -> list[CommandSummary]:
    """Every command once (its newest version), by namespace and name; two queries."""
    counts = {
        (row["namespace"], row["name"]): (row["newest"], row["n"])
        for row in Command.objects.values("namespace", "name").annotate(
            newest=Max("id"), n=Count("id")
        )
    }
    newest = Command.objects.filter(pk__in=[pk for pk, _ in counts.values()])
    return sorted(
        (CommandSummary(c, counts[(c.namespace, c.name)][1]) for c in newest),
        key=lambda s: (s.command.namespace, s.command.name),
    )


def sorted_command_versions(commands: list[Command]) -> list[Command]:
    """Versions from the highest to the lowest."""
    return sorted(commands, key=lambda c: (version_key(c.version), c.pk), reverse=True)
