"""Job templates that builds publish, tag and remove, with Screwdriver's versions and owners."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from pipelines.config import ConfigError
from pipelines.config.job_template import identity_of, validate_template
from pipelines.config.templates import DEFAULT_NAMESPACE
from pipelines.models import Template, TemplateTag
from pipelines.services.pipelines import PipelineError
from pipelines.services.publishing import (
    Publisher,
    becomes_latest,
    check_owner,
    next_version,
    pr_refusal,
    remove_tag,
    tag_version,
)

PR_REFUSAL = pr_refusal("template")


class TemplateInvalid(PipelineError):
    """An sd-template.yaml with schema errors; `errors` holds them as Screwdriver lists them."""

    def __init__(self, errors: list[dict[str, object]]) -> None:
        super().__init__(f"Template has invalid format: {len(errors)} error(s).", status=400)
        self.errors = errors


def split_name(full_name: str) -> tuple[str, str]:
    """``ns/name`` to (ns, name); a name without a slash is in the ``default`` namespace."""
    namespace, slash, name = full_name.partition("/")
    return (namespace, name) if slash else (DEFAULT_NAMESPACE, full_name)


def _owner_check(publisher: Publisher, owner_id: int | None, action: str) -> None:
    check_owner(publisher, owner_id, action, "template")


@transaction.atomic
def publish_template(*, publisher: Publisher, text: str) -> Template:
    """Store a new version of the template an sd-template.yaml describes.

    The first publisher's pipeline owns the name. The patch number is assigned: one more than
    the highest published ``major.minor`` that the yaml's version names, or 0.
    """
    try:
        result = validate_template(text)
    except ConfigError as exc:
        raise PipelineError(f"Template is not valid YAML: {exc.message}.") from None
    if result["errors"]:
        raise TemplateInvalid(result["errors"])
    data = result["template"]
    who = identity_of(data)
    # Lock the name's versions so two publishers cannot both take the next patch number.
    versions = list(
        Template.objects.select_for_update()
        .filter(namespace=who.namespace, name=who.name)
        .order_by("-id")
    )
    _owner_check(
        publisher, versions[0].pipeline_id if versions else publisher.pipeline.pk, "publish"
    )
    version = next_version([t.version for t in versions], who.major, who.minor)
    latest = next((t for t in versions if t.latest), None)
    is_latest = becomes_latest(version, latest.version if latest else None)
    if latest is not None and is_latest:
        Template.objects.filter(pk=latest.pk).update(latest=False)
    try:
        with transaction.atomic():
            return Template.objects.create(
                namespace=who.namespace,
                name=who.name,
                version=version,
                description=data.get("description", ""),
                maintainer=data.get("maintainer", ""),
                config=data.get("config") or {},
                images=data.get("images") or {},
                labels=list(data.get("labels") or []),
                pipeline=publisher.pipeline,
                trusted=bool(latest and latest.trusted),
                latest=is_latest,
            )
    except IntegrityError:
        raise PipelineError(
            f"{who.namespace}/{who.name}@{version} was published at the same time: publish again.",
            status=409,
        ) from None


def tag_template(
    *, publisher: Publisher, namespace: str, name: str, tag: str, version: str
) -> tuple[TemplateTag, bool]:
    """Point `tag` at an exact published version; return the tag and whether it is new."""
    return tag_version(
        publisher=publisher,
        version_model=Template,
        tag_model=TemplateTag,
        kind="template",
        namespace=namespace,
        name=name,
        tag=tag,
        version=version,
    )


def remove_template_tag(*, publisher: Publisher, namespace: str, name: str, tag: str) -> None:
    """Delete a tag (not the version it points at)."""
    remove_tag(
        publisher=publisher,
        version_model=Template,
        tag_model=TemplateTag,
        kind="template",
        namespace=namespace,
        name=name,
        tag=tag,
    )


@transaction.atomic
def remove_template(*, namespace: str, name: str) -> int:
    """Delete every version and tag of a template (the caller's rights are checked already)."""
    TemplateTag.objects.filter(namespace=namespace, name=name).delete()
    deleted, _ = Template.objects.filter(namespace=namespace, name=name).delete()
    return deleted


@transaction.atomic
def remove_template_version(*, template: Template) -> None:
    """Delete one version and the tags that point at it (the caller's rights are checked
    already); when it was the latest, the most recently published version left becomes the
    latest, as Screwdriver's removeVersion does."""
    versions = Template.objects.select_for_update().filter(
        namespace=template.namespace, name=template.name
    )
    was_latest = versions.filter(pk=template.pk, latest=True).exists()
    TemplateTag.objects.filter(
        namespace=template.namespace, name=template.name, version=template.version
    ).delete()
    versions.filter(pk=template.pk).delete()
    if was_latest:
        newest = versions.order_by("-created_at", "-id").first()
        if newest is not None:
            versions.filter(pk=newest.pk).update(latest=True)


@transaction.atomic
def set_template_trusted(*, namespace: str, name: str, trusted: bool) -> Template:
    """Mark the latest version trusted (or not); later versions inherit the mark."""
    versions = Template.objects.select_for_update().filter(namespace=namespace, name=name)
    template = (
        versions.filter(latest=True).order_by("-id").first() or versions.order_by("-id").first()
    )
    if template is None:
        raise PipelineError(f"Template {namespace}/{name} does not exist.", status=404)
    template.trusted = trusted
    template.save(update_fields=["trusted"])
    return template
