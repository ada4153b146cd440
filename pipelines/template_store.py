"""Job and pipeline templates from the database, served to the screwdriver.yaml parser."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipelines.config import resolve_template
from pipelines.models import PipelineTemplateTag, PipelineTemplateVersion, Template, TemplateTag

_FIELDS = ("id", "namespace", "name", "version", "config", "images")


def database_templates(
    namespace: str, name: str, version_or_tag: str | None
) -> Mapping[str, Any] | None:
    """Return the template a ``namespace/name@version-or-tag`` reference picks, or None.

    Satisfies ``pipelines.config.TemplateLookup``; the picking rules live in the parser's
    ``resolve_template`` so the database and the differential tests agree on them.
    """
    versions = Template.objects.filter(namespace=namespace, name=name).values(*_FIELDS)
    tags = dict(
        TemplateTag.objects.filter(namespace=namespace, name=name).values_list("tag", "version")
    )
    return resolve_template(list(versions), tags, version_or_tag)


def database_pipeline_templates(
    namespace: str, name: str, version_or_tag: str | None
) -> Mapping[str, Any] | None:
    """Return the pipeline template version a top-level ``template:`` picks, or None.

    Satisfies ``pipelines.config.PipelineTemplateLookup``, with the picking rules of job
    templates (the reference parser's own store picks them the same way).
    """
    versions = [
        {**row, "namespace": namespace, "name": name}
        for row in PipelineTemplateVersion.objects.filter(
            template__namespace=namespace, template__name=name
        ).values("id", "version", "config")
    ]
    tags = dict(
        PipelineTemplateTag.objects.filter(
            template__namespace=namespace, template__name=name
        ).values_list("tag", "version")
    )
    return resolve_template(versions, tags, version_or_tag)
