"""What templates and commands share when builds publish them: the owner rule, versions, tags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import transaction

from pipelines.config.job_template import version_key
from pipelines.models import (
    Command,
    CommandTag,
    Pipeline,
    PipelineTemplateTag,
    Template,
    TemplateTag,
)
from pipelines.services.pipelines import PipelineError

# The column's width, as Screwdriver's schema sets it.
VERSION_MAX = 16

# The kinds whose versions and tags are rows keyed by namespace and name, and every tag model.
Published = TypeVar("Published", Command, Template)
NamedTag = TypeVar("NamedTag", CommandTag, TemplateTag)
Tag = TypeVar("Tag", CommandTag, TemplateTag, PipelineTemplateTag)


@dataclass(frozen=True)
class Publisher:
    """The build asking: its pipeline and whether it belongs to a pull request."""

    pipeline: Pipeline
    is_pr: bool


def pr_refusal(kind: str) -> str:
    """What a pull request's build hears when it tries to publish."""
    return (
        f"A pull request's build cannot publish or tag {kind}s: "
        "publish from a build of the pipeline's own branch."
    )


def check_owner(publisher: Publisher, owner_id: int | None, action: str, kind: str) -> None:
    """Refuse a pull request's build, and a build of any pipeline but the owner."""
    if publisher.is_pr:
        raise PipelineError(pr_refusal(kind), status=403)
    if owner_id != publisher.pipeline.pk:
        raise PipelineError(
            f"Not allowed to {action} this {kind}: only builds of the pipeline that first "
            "published it may.",
            status=403,
        )


def next_version(published: Sequence[str], major: int, minor: int | None) -> str:
    """The version a publish of ``major[.minor]`` gets: the next patch of the highest match."""
    prefix = f"{major}" if minor is None else f"{major}.{minor}"
    matching = [v for v in published if f"{v}.".startswith(f"{prefix}.")]
    if matching:
        found = (*version_key(max(matching, key=version_key)), 0, 0, 0)[:3]
        version = f"{found[0]}.{found[1]}.{found[2] + 1}"
    else:
        version = f"{major}.{minor or 0}.0"
    if len(version) > VERSION_MAX:
        raise PipelineError(
            f"Version {version} would be longer than {VERSION_MAX} characters: use a smaller one."
        )
    return version


def becomes_latest(version: str, latest: str | None) -> bool:
    """Whether a new version takes `latest` from the current one (same or higher major.minor)."""
    return latest is None or version_key(version)[:2] >= version_key(latest)[:2]


@transaction.atomic
def point_tag(
    tag_model: type[Tag], scope: dict[str, Any], tag: str, version: str
) -> tuple[Tag, bool]:
    """Create or move the tag in `scope` (its name's key fields) to `version`; True if new."""
    row, created = tag_model.objects.select_for_update().get_or_create(
        **scope, tag=tag, defaults={"version": version}
    )
    if not created and row.version != version:
        row.version = version
        row.save(update_fields=["version"])
    return row, created


@transaction.atomic
def tag_version(
    *,
    publisher: Publisher,
    version_model: type[Published],
    tag_model: type[NamedTag],
    kind: str,
    namespace: str,
    name: str,
    tag: str,
    version: str,
) -> tuple[NamedTag, bool]:
    """Point `tag` at an exact published version, if the publisher owns that version."""
    found = version_model.objects.filter(namespace=namespace, name=name, version=version).first()
    if found is None:
        raise PipelineError(
            f"{kind.capitalize()} {namespace}/{name}@{version} not found.", status=404
        )
    check_owner(publisher, found.pipeline_id, "tag", kind)
    return point_tag(tag_model, {"namespace": namespace, "name": name}, tag, version)


@transaction.atomic
def remove_tag(
    *,
    publisher: Publisher,
    version_model: type[Published],
    tag_model: type[NamedTag],
    kind: str,
    namespace: str,
    name: str,
    tag: str,
) -> None:
    """Delete a tag (not the version it points at), if the publisher owns the newest version."""
    row = tag_model.objects.filter(namespace=namespace, name=name, tag=tag).first()
    if row is None:
        raise PipelineError(
            f"{kind.capitalize()} tag {namespace}/{name}@{tag} does not exist.", status=404
        )
    owner = (
        version_model.objects.filter(namespace=namespace, name=name)
        .order_by("-id")
        .values_list("pipeline_id", flat=True)
        .first()
    )
    check_owner(publisher, owner, "remove a tag of", kind)
    row.delete()
