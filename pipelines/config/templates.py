"""Job templates: naming, lookup rules and merging a template into the jobs that use it."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import ConfigError
from .flatten import merge, step_key
from .jsvalues import truthy

_FULL_NAME = re.compile(
    r"^([\w/-]+)(?:@((?:(?:\d+)(?:\.\d+)?(?:\.\d+)?)|(?:[a-zA-Z][\w\-.]+)))?$", re.ASCII
)
_VERSION = re.compile(r"^(\d+)(\.\d+)?(\.\d+)?$", re.ASCII)
_TAG = re.compile(r"^[a-zA-Z][\w\-.]+$", re.ASCII)
DEFAULT_NAMESPACE = "default"


class TemplateLookup(Protocol):
    """Finds one published template; returns None when there is no such template."""

    def __call__(
        self, namespace: str, name: str, version_or_tag: str | None
    ) -> Mapping[str, Any] | None:
        """Return ``{id, namespace, name, version, config, images}`` or None."""
        ...


@dataclass(frozen=True)
class TemplateName:
    """A parsed ``namespace/name@version-or-tag`` reference."""

    namespace: str
    name: str
    version_or_tag: str | None

    @property
    def is_version(self) -> bool:
        """Return whether the reference names a version (``1``, ``1.2``, ``1.2.3``)."""
        return bool(self.version_or_tag and _VERSION.match(self.version_or_tag))

    @property
    def is_tag(self) -> bool:
        """Return whether the reference names a tag (``stable``)."""
        return bool(self.version_or_tag and _TAG.match(self.version_or_tag))


def parse_template_name(full_name: str) -> TemplateName:
    """Split a template reference; without a slash the namespace is ``default``."""
    match = _FULL_NAME.match(full_name)
    if match is None:  # the schema has already refused these
        raise ConfigError(f"Template {full_name} does not exist")
    path, version_or_tag = match.group(1), match.group(2)
    namespace, slash, name = path.partition("/")
    if not slash:
        namespace, name = DEFAULT_NAMESPACE, path
    return TemplateName(namespace, name, version_or_tag)


def _version_key(version: str) -> tuple[int, ...]:
    """Return a version as numbers, for sorting."""
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


def resolve_template(
    versions: Iterable[Mapping[str, Any]],
    tags: Mapping[str, str],
    version_or_tag: str | None,
) -> Mapping[str, Any] | None:
    """Pick a template among one template's published versions, as Screwdriver's store does.

    A tag maps to its version; ``1`` or ``1.2`` picks the highest version with that prefix;
    no version picks the most recently published one (highest id).
    """
    candidates = list(versions)
    wanted = version_or_tag
    if wanted and not _VERSION.match(wanted):
        wanted = tags.get(wanted)
        if wanted is None:
            return None
    if not wanted:
        return max(candidates, key=lambda row: row["id"], default=None)
    matching = [row for row in candidates if f"{row['version']}.".startswith(f"{wanted}.")]
    return max(
        matching, key=lambda row: (_version_key(str(row["version"])), row["id"]), default=None
    )


def version_warnings(data: dict[str, Any]) -> list[str]:
    """Warn about templates used without a version or tag."""
    warnings = []
    shared_template = (data.get("shared") or {}).get("template")
    if shared_template is not None and not _explicit(shared_template):
        warnings.append(
            f"{shared_template} template in shared settings should be explicitly versioned"
        )
    for job_name, job in data["jobs"].items():
        template = (job or {}).get("template")
        if template is not None and not _explicit(template):
            warnings.append(f"{template} template in {job_name} job should be explicitly versioned")
    return warnings


def _explicit(full_name: str) -> bool:
    """Return whether a template reference carries a version or a tag."""
    name = parse_template_name(full_name)
    return name.is_version or name.is_tag


def merge_shared_steps(shared: dict[str, Any], job: dict[str, Any]) -> None:
    """Append shared steps the job lacks when the job asks for it (mergeSharedSteps)."""
    shared_steps = shared.get("steps")
    annotations = job.get("annotations")
    if not shared_steps or not (
        isinstance(annotations, dict) and truthy(annotations.get("screwdriver.cd/mergeSharedSteps"))
    ):
        return
    own = {step_key(item) for item in job.get("steps") or []}
    for item in shared_steps:
        # The reference looks a step up by its key list joined with commas.
        key = (
            ",".join(item) if isinstance(item, dict) else ",".join(str(i) for i in range(len(item)))
        )
        if key not in own:
            job["steps"].append(item)


def _merge_into(
    template: Mapping[str, Any],
    job: dict[str, Any],
    shared: dict[str, Any],
    pipeline_parameters: dict[str, Any],
) -> tuple[dict[str, Any], list[str]]:
    """Return one job merged into a copy of its template's config, and the warnings."""
    new_job: dict[str, Any] = copy.deepcopy(dict(template.get("config") or {}))
    namespace = template.get("namespace") or ""
    full_name = template["name"]
    if namespace and namespace != DEFAULT_NAMESPACE:
        full_name = f"{namespace}/{template['name']}"
    environment = new_job.get("environment") or {}
    environment.update(
        {
            "SD_TEMPLATE_FULLNAME": full_name,
            "SD_TEMPLATE_NAME": template["name"],
            "SD_TEMPLATE_NAMESPACE": namespace,
            "SD_TEMPLATE_VERSION": template["version"],
        }
    )
    new_job["environment"] = environment
    merge_shared_steps(shared, job)
    if "parameters" in new_job:
        parameters = job.get("parameters") or {}
        for key, value in new_job["parameters"].items():
            if key not in parameters and key not in pipeline_parameters:
                parameters[key] = value
        if parameters:
            new_job["parameters"] = parameters
        else:
            del new_job["parameters"]
    elif "parameters" in job:
        new_job["parameters"] = job["parameters"]
    warnings = merge(new_job, job, from_template=True)
    new_job.pop("template", None)
    new_job["templateId"] = template.get("id")
    images = template.get("images")
    if isinstance(images, dict) and new_job.get("image") in images:
        new_job["image"] = images[new_job["image"]]
    return new_job, warnings


def flatten_templates(
    jobs: dict[str, dict[str, Any]],
    shared: dict[str, Any],
    pipeline_parameters: dict[str, Any],
    lookup: TemplateLookup | None,
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Merge each job's template into it; return the jobs (same order) and the warnings."""
    result: dict[str, dict[str, Any]] = {}
    order_warnings: list[str] = []
    groups: dict[str, list[str]] = {}
    for name, job in jobs.items():
        template_name = job.get("template")
        if not template_name:
            if job.get("order") and template_name is None:
                order_warnings.append(f'"order" in {name} job cannot be used without "template"')
            result[name] = copy.deepcopy(job)
            continue
        groups.setdefault(template_name, []).append(name)
    warnings: list[str] = []
    for template_name, names in groups.items():
        parsed = parse_template_name(template_name)
        template = lookup(parsed.namespace, parsed.name, parsed.version_or_tag) if lookup else None
        for name in names:
            if template is None:
                raise ConfigError(f"Template {template_name} does not exist")
            result[name], job_warnings = _merge_into(
                template, copy.deepcopy(jobs[name]), shared, pipeline_parameters
            )
            warnings.extend(job_warnings)
    return {name: result[name] for name in jobs}, [*order_warnings, *warnings]
