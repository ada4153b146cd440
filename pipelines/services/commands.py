"""Build commands that builds publish, tag and remove (`sd-cmd`), with Screwdriver's versions."""

from __future__ import annotations

import posixpath
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction

from pipelines.config.command_spec import TAG, check_spec, identity_of
from pipelines.models import Command, CommandTag
from pipelines.services.pipelines import PipelineError
from pipelines.services.publishing import (
    Publisher,
    becomes_latest,
    check_owner,
    next_version,
    remove_tag,
    tag_version,
)
from screwdriver_site.outputs import check_name, delete_prefix, outputs

STORAGE_PREFIX = "commands"


class CommandInvalid(PipelineError):
    """A command spec with schema errors; `errors` holds them as Screwdriver lists them."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"Command has invalid format: {len(errors)} error(s).", status=400)
        self.errors = errors


def binary_required(spec: dict[str, Any]) -> bool:
    """Whether publishing this spec needs an uploaded file (binary, local habitat)."""
    form = spec.get("format")
    return form == "binary" or (
        form == "habitat" and (spec.get("habitat") or {}).get("mode") == "local"
    )


def _storage_folder(namespace: str, name: str) -> str:
    return f"{STORAGE_PREFIX}/{namespace}/{name}"


@transaction.atomic
def publish_command(
    *, publisher: Publisher, spec: Any, binary: IO[bytes] | None, size: int | None = None
) -> Command:
    """Store a new version of a command; the first publisher's pipeline owns the name.

    The patch number is assigned as for templates. A binary (or a local habitat package) is
    stored in the outputs storage; docker and remote habitat commands have none.
    """
    errors = check_spec(spec)
    if errors:
        raise CommandInvalid(errors)
    who = identity_of(spec)
    form = str(spec["format"])
    needs_file = binary_required(spec)
    if needs_file and binary is None:
        raise PipelineError(f"A {form} command needs its file: send it as the `file` part.")
    if not needs_file and binary is not None:
        raise PipelineError(f"A {form} command has no file to upload: send the spec alone.")
    cap = int(settings.SD_ARTIFACTS_MAX_FILE_BYTES)
    if size is not None and size > cap:
        raise PipelineError(
            f"The command's file is {size} bytes, more than the {cap} a file may have "
            "(SD_ARTIFACTS_MAX_FILE_BYTES).",
            status=413,
        )
    versions = list(
        Command.objects.select_for_update()
        .filter(namespace=who.namespace, name=who.name)
        .order_by("-id")
    )
    owner = versions[0].pipeline_id if versions else publisher.pipeline.pk
    check_owner(publisher, owner, "publish", "command")
    version = next_version([c.version for c in versions], who.major, who.minor)
    latest = next((c for c in versions if c.latest), None)
    is_latest = becomes_latest(version, latest.version if latest else None)
    if latest is not None and is_latest:
        Command.objects.filter(pk=latest.pk).update(latest=False)
    section = dict(spec[form])
    stored, stored_size = "", 0
    if binary is not None:
        base = posixpath.basename(str(section.get("file") or "")) or who.name
        stored = check_name(f"{_storage_folder(who.namespace, who.name)}/{version}/{base}")
        storage = outputs()
        if storage.exists(stored):
            storage.delete(stored)
        # The row is written in this transaction; a failed insert leaves an orphan file that
        # the next publish of this version overwrites.
        stored = storage.save(stored, File(binary))
        stored_size = storage.size(stored)
    try:
        with transaction.atomic():
            return Command.objects.create(
                namespace=who.namespace,
                name=who.name,
                version=version,
                description=str(spec.get("description") or ""),
                maintainer=str(spec.get("maintainer") or ""),
                usage=str(spec.get("usage") or ""),
                format=form,
                spec=section,
                binary_name=stored,
                binary_size=stored_size,
                pipeline=publisher.pipeline,
                trusted=bool(latest and latest.trusted),
                latest=is_latest,
            )
    except IntegrityError:
        raise PipelineError(
            f"{who.namespace}/{who.name}@{version} was published at the same time: publish again.",
            status=409,
        ) from None


def tag_command(
    *, publisher: Publisher, namespace: str, name: str, tag: str, version: str
) -> tuple[CommandTag, bool]:
    """Point `tag` at an exact published version (`sd-cmd promote`); return it and if it is new."""
    if not TAG.match(tag):
        raise PipelineError(f"{tag} is not a tag name: start with a letter, at most 30 characters.")
    return tag_version(
        publisher=publisher,
        version_model=Command,
        tag_model=CommandTag,
        kind="command",
        namespace=namespace,
        name=name,
        tag=tag,
        version=version,
    )


def remove_command_tag(*, publisher: Publisher, namespace: str, name: str, tag: str) -> None:
    """Delete a tag (not the version it points at)."""
    remove_tag(
        publisher=publisher,
        version_model=Command,
        tag_model=CommandTag,
        kind="command",
        namespace=namespace,
        name=name,
        tag=tag,
    )


def remove_command(*, namespace: str, name: str) -> int:
    """Delete every version, tag and file of a command (the caller's rights are checked)."""
    with transaction.atomic():
        CommandTag.objects.filter(namespace=namespace, name=name).delete()
        deleted, _ = Command.objects.filter(namespace=namespace, name=name).delete()
    delete_prefix(_storage_folder(namespace, name))
    return deleted


@transaction.atomic
def set_command_trusted(*, namespace: str, name: str, trusted: bool) -> Command:
    """Mark the latest version trusted (or not); later versions inherit the mark."""
    versions = Command.objects.select_for_update().filter(namespace=namespace, name=name)
    command = (
        versions.filter(latest=True).order_by("-id").first() or versions.order_by("-id").first()
    )
    if command is None:
        raise PipelineError(f"Command {namespace}/{name} does not exist.", status=404)
    command.trusted = trusted
    command.save(update_fields=["trusted"])
    return command
