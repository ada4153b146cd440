"""Reads of published job templates: lists, versions, tags and the pipelines that use them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery

from builds.models import Build
from pipelines.config import resolve_template
from pipelines.config.job_template import version_key
from pipelines.models import (
    Command,
    CommandTag,
    Job,
    Pipeline,
    PipelineTemplate,
    PipelineTemplateVersion,
    Template,
    TemplateTag,
)

# The kinds whose versions and tags are rows keyed by namespace and name (commands use these too).
Published = TypeVar("Published", Template, Command)
PublishedTag = TypeVar("PublishedTag", TemplateTag, CommandTag)


def published_versions(model: type[Published], namespace: str, name: str) -> QuerySet[Published]:
    """Every published version of one template or command, newest first."""
    return model.objects.filter(namespace=namespace, name=name).order_by("-id")


def published_tags(
    tag_model: type[PublishedTag], namespace: str, name: str
) -> QuerySet[PublishedTag]:
    """One template's or command's tags, by name."""
    return tag_model.objects.filter(namespace=namespace, name=name).order_by("tag")


def pick_published(
    model: type[Published],
    tag_model: type[PublishedTag],
    namespace: str,
    name: str,
    version_or_tag: str | None,
) -> Published | None:
    """The version ``ns/name@versionOrTag`` picks: a tag, ``1``/``1.2`` (highest), or exact."""
    rows = list(published_versions(model, namespace, name).values("id", "version"))
    tags = dict(published_tags(tag_model, namespace, name).values_list("tag", "version"))
    picked = resolve_template(rows, tags, version_or_tag)
    return None if picked is None else model.objects.get(pk=picked["id"])


def versions_of(namespace: str, name: str) -> QuerySet[Template]:
    """Every published version of one template, newest first."""
    return published_versions(Template, namespace, name)


def tags_of(namespace: str, name: str) -> QuerySet[TemplateTag]:
    """One template's tags, by name."""
    return published_tags(TemplateTag, namespace, name)


def pick_version(namespace: str, name: str, version_or_tag: str | None) -> Template | None:
    """The version a ``name@versionOrTag`` reference picks, as the config parser picks it."""
    return pick_published(Template, TemplateTag, namespace, name, version_or_tag)


def search_templates(
    *, namespace: str | None = None, search: str | None = None, compact: bool = False
) -> QuerySet[Template]:
    """Templates filtered as ``GET /v4/templates`` filters them.

    `compact` keeps one row per template (its latest version), as Screwdriver's compact list.
    """
    rows = Template.objects.select_related("pipeline")
    if namespace:
        rows = rows.filter(namespace=namespace)
    if search:
        words = Q(name__icontains=search) | Q(description__icontains=search)
        if not namespace:
            words |= Q(namespace__icontains=search)
        rows = rows.filter(words)
    if compact:
        newest = rows.values("namespace", "name").annotate(newest=Max("id")).values("newest")
        rows = rows.filter(pk__in=[row["newest"] for row in newest]).defer("config")
    return rows


@dataclass(frozen=True)
class TemplateSummary:
    """One template on the list page: its newest version and how many versions it has."""

    template: Template
    versions: int


def template_summaries() -> list[TemplateSummary]:
    """Every template once (its newest version), by namespace and name; two queries."""
    counts = {
        (row["namespace"], row["name"]): (row["newest"], row["n"])
        for row in Template.objects.values("namespace", "name").annotate(
            newest=Max("id"), n=Count("id")
        )
    }
    newest = Template.objects.filter(pk__in=[pk for pk, _ in counts.values()]).defer("config")
    return sorted(
        (TemplateSummary(t, counts[(t.namespace, t.name)][1]) for t in newest),
        key=lambda s: (s.template.namespace, s.template.name),
    )


def sorted_versions(templates: list[Template]) -> list[Template]:
    """Versions from the highest to the lowest."""
    return sorted(templates, key=lambda t: (version_key(t.version), t.pk), reverse=True)


def pipelines_using(template_ids: list[int], readable: QuerySet[Pipeline]) -> list[Pipeline]:
    """The pipelines, among those the reader may see, whose jobs use these template versions.

    A job's parsed config keeps the id of the version it was merged from (``templateId``), as
    Screwdriver's job row does; every permutation of a job has the same one.
    """
    if not template_ids:
        return []
    jobs = Job.objects.filter(archived=False, permutations__0__templateId__in=template_ids)
    pipeline_ids = set(jobs.values_list("pipeline_id", flat=True))
    return list(readable.filter(pk__in=pipeline_ids).order_by("id"))


def _jobs_using(template_ids: list[int]) -> list[tuple[int, int]]:
    """(pipeline id, template id) of every job that is not archived and uses one of them."""
    jobs = Job.objects.filter(archived=False, permutations__0__templateId__in=template_ids)
    return [
        (pipeline_id, int(template_id))
        for pipeline_id, template_id in jobs.values_list(
            "pipeline_id", "permutations__0__templateId"
        )
    ]


def template_metrics(
    template_ids: list[int], *, start: datetime | None = None, end: datetime | None = None
) -> dict[int, dict[str, dict[str, int]]]:
    """Screwdriver's `metrics` of each template version: its jobs that are not archived, the
    pipelines those are in, and its builds made from `start` to `end` (archived jobs' too:
    builds are history); two queries."""
    jobs = _jobs_using(template_ids) if template_ids else []
    job_counts = Counter(template_id for _, template_id in jobs)
    pipeline_counts = Counter(template_id for _, template_id in set(jobs))
    builds = Build.objects.filter(template_id__in=template_ids)
    if start is not None:
        builds = builds.filter(created_at__gte=start)
    if end is not None:
        builds = builds.filter(created_at__lte=end)
    build_counts = dict(
        builds.order_by()
        .values("template_id")
        .annotate(n=Count("id"))
        .values_list("template_id", "n")
    )
    return {
        pk: {
            "jobs": {"count": job_counts[pk]},
            "builds": {"count": int(build_counts.get(pk, 0))},
            "pipelines": {"count": pipeline_counts[pk]},
        }
        for pk in template_ids
    }


def pipeline_usage(template_id: int) -> QuerySet[Pipeline]:
    """The public pipelines with a job (not archived) that uses this template version, with
    their last event, as Screwdriver's usage report lists them: a private one is never named."""
    pipeline_ids = {pipeline_id for pipeline_id, _ in _jobs_using([template_id])}
    return Pipeline.objects.public().filter(pk__in=pipeline_ids).select_related("last_event")


def search_pipeline_templates(
    *, namespace: str | None = None, search: str | None = None
) -> QuerySet[PipelineTemplate]:
    """Pipeline templates filtered as ``GET /v4/pipeline/templates`` filters them."""
    rows = PipelineTemplate.objects.all()
    if namespace:
        rows = rows.filter(namespace=namespace)
    if search:
        words = Q(name__icontains=search) | Q(maintainer__icontains=search)
        if not namespace:
            words |= Q(namespace__icontains=search)
        rows = rows.filter(words)
    return rows


def pick_pipeline_template_version(
    template: PipelineTemplate, version_or_tag: str | None
) -> PipelineTemplateVersion | None:
    """The version a ``namespace/name@versionOrTag`` reference picks, as the parser picks it."""
    rows = list(template.versions.values("id", "version"))
    tags = dict(template.tags.values_list("tag", "version"))
    picked = resolve_template(rows, tags, version_or_tag)
    return None if picked is None else template.versions.get(pk=picked["id"])


def pipeline_template_summaries() -> QuerySet[PipelineTemplate]:
    """Every pipeline template with its number of versions and its latest version's
    description (``versions_count``, ``description``); one query."""
    latest = PipelineTemplateVersion.objects.filter(
        template=OuterRef("pk"), version=OuterRef("latest_version")
    ).values("description")[:1]
    return (
        PipelineTemplate.objects.annotate(
            versions_count=Count("versions", distinct=True), description=Subquery(latest)
        )
        .select_related("pipeline")
        .order_by("namespace", "name")
    )


def trusts(template: PipelineTemplate, version: str) -> bool:
    """Whether this version of the template is trusted: it is at or above the version the
    template was trusted since (Screwdriver's trustedSinceVersion)."""
    since = template.trusted_since_version
    return bool(since) and version_key(version) >= version_key(since)


def pipelines_using_pipeline_template(
    template: PipelineTemplate, readable: QuerySet[Pipeline]
) -> list[tuple[Pipeline, str]]:
    """The pipelines, among those the reader may see, whose file names this pipeline
    template, each with the version it uses now.

    Every job of such a pipeline carries SD_PIPELINE_TEMPLATE_FULLNAME and _VERSION in its
    environment, as Screwdriver's merge puts them there.
    """
    full_name = f"{template.namespace}/{template.name}"
    jobs = Job.objects.filter(
        archived=False, permutations__0__environment__SD_PIPELINE_TEMPLATE_FULLNAME=full_name
    ).only("pipeline_id", "permutations")
    versions: dict[int, str] = {}
    for job in jobs:
        environment = (job.permutations[0] or {}).get("environment") or {}
        versions.setdefault(job.pipeline_id, str(environment.get("SD_PIPELINE_TEMPLATE_VERSION")))
    found = readable.filter(pk__in=list(versions)).order_by("id")
    return [(pipeline, versions[pipeline.pk]) for pipeline in found]
