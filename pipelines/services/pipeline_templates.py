"""Pipeline templates that builds publish and tag, with the rules of job templates."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from pipelines.config import ConfigError
from pipelines.config.job_template import identity_of
from pipelines.config.pipeline_template import validate_pipeline_template
from pipelines.models import PipelineTemplate, PipelineTemplateTag, PipelineTemplateVersion
from pipelines.services.pipelines import PipelineError
from pipelines.services.publishing import (
    Publisher,
    becomes_latest,
    check_owner,
    next_version,
    point_tag,
)
from pipelines.services.templates import TemplateInvalid

KIND = "pipeline template"


@transaction.atomic
def publish_pipeline_template(*, publisher: Publisher, text: str) -> PipelineTemplateVersion:
    """Store a new version of the pipeline template an sd-template.yaml describes.

    The first publisher's pipeline owns the name; the patch number is assigned as for job
    templates, and a version at or above the latest ``major.minor`` becomes the latest.
    """
    try:
        result = validate_pipeline_template(text)
    except ConfigError as exc:
        raise PipelineError(f"Template is not valid YAML: {exc.message}.") from None
    if result["errors"]:
        raise TemplateInvalid(result["errors"])
    data = result["template"]
    who = identity_of(data)
    template, _ = PipelineTemplate.objects.select_for_update().get_or_create(
        namespace=who.namespace,
        name=who.name,
        defaults={"pipeline": publisher.pipeline, "maintainer": data["maintainer"]},
    )
    check_owner(publisher, template.pipeline_id, "publish", KIND)
    published = list(template.versions.values_list("version", flat=True))
    version = next_version(published, who.major, who.minor)
    if becomes_latest(version, template.latest_version or None):
        template.latest_version = version
    template.maintainer = data["maintainer"]
    template.save(update_fields=["latest_version", "maintainer", "updated_at"])
    try:
        with transaction.atomic():
            return PipelineTemplateVersion.objects.create(
                template=template,
                version=version,
                description=data["description"],
                config=data["config"],
                workflow_graph=data["workflowGraph"],
            )
    except IntegrityError:
        raise PipelineError(
            f"{template}@{version} was published at the same time: publish again.", status=409
        ) from None


def _template(namespace: str, name: str) -> PipelineTemplate:
    template = PipelineTemplate.objects.filter(namespace=namespace, name=name).first()
    if template is None:
        raise PipelineError(f"Pipeline template {namespace}/{name} does not exist.", status=404)
    return template


@transaction.atomic
def tag_pipeline_template(
    *, publisher: Publisher, namespace: str, name: str, tag: str, version: str
) -> tuple[PipelineTemplateTag, bool]:
    """Point `tag` at an exact published version; return the tag and whether it is new."""
    template = _template(namespace, name)
    if not template.versions.filter(version=version).exists():
        raise PipelineError(
            f"Pipeline template {namespace}/{name}@{version} not found.", status=404
        )
    check_owner(publisher, template.pipeline_id, "tag", KIND)
    return point_tag(PipelineTemplateTag, {"template": template}, tag, version)


@transaction.atomic
def remove_pipeline_template_tag(
    *, publisher: Publisher, namespace: str, name: str, tag: str
) -> None:
    """Delete a tag (not the version it points at)."""
    template = _template(namespace, name)
    row = template.tags.filter(tag=tag).first()
    if row is None:
        raise PipelineError(
            f"Pipeline template tag {namespace}/{name}@{tag} does not exist.", status=404
        )
    check_owner(publisher, template.pipeline_id, "remove a tag of", KIND)
    row.delete()


@transaction.atomic
def remove_pipeline_template(*, template: PipelineTemplate) -> None:
    """Delete a pipeline template with its versions and tags (rights are checked already)."""
    template.delete()


@transaction.atomic
def remove_pipeline_template_version(*, template: PipelineTemplate, version: str) -> None:
    """Delete one exact version and the tags that point at it (rights are checked already).

    When it was the latest, the most recently published version left becomes the latest, as
    Screwdriver's removeVersion does; with none left the template keeps its name, unversioned.
    """
    template = PipelineTemplate.objects.select_for_update().get(pk=template.pk)
    deleted, _ = template.versions.filter(version=version).delete()
    if not deleted:
        raise PipelineError(
            f"Pipeline template {template} with version {version} does not exist.", status=404
        )
    template.tags.filter(version=version).delete()
    if template.latest_version == version:
        newest = template.versions.order_by("-created_at", "-id").first()
        template.latest_version = newest.version if newest is not None else ""
        template.save(update_fields=["latest_version", "updated_at"])


@transaction.atomic
def set_pipeline_template_trusted(*, namespace: str, name: str, trusted: bool) -> PipelineTemplate:
    """Trust a pipeline template from its latest version on (versions published later are
    trusted too), or trust it no more, as Screwdriver's trustedSinceVersion does: marking a
    template that is trusted already keeps the version it was trusted since."""
    template = (
        PipelineTemplate.objects.select_for_update().filter(namespace=namespace, name=name).first()
    )
    if template is None:
        raise PipelineError(f"Pipeline template {namespace}/{name} does not exist.", status=404)
    if not trusted:
        template.trusted_since_version = ""
    elif not template.trusted_since_version:
        template.trusted_since_version = template.latest_version
    template.save(update_fields=["trusted_since_version", "updated_at"])
    return template
