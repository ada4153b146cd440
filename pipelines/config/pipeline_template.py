"""Pipeline templates: a whole screwdriver.yaml laid under the file that names it.

The user's file may add jobs, and may set only a few fields of the template's jobs and of
``shared``; the rules and the order of the merge are Screwdriver's (config-parser's merge phase).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Protocol

from .definitions import CONFIG
from .errors import ConfigError
from .flatten import flatten_shared_into_jobs, merge
from .graph import build_workflow_graph
from .job_template import NAME_NO_SLASH, NAMESPACE, VERSION, email_rule, template_error
from .jsvalues import truthy
from .loader import load_spec_document
from .schema import Obj, Str, validate
from .templates import merge_shared_steps

# The fields a file may set on a job that its pipeline template defines, in the reference's
# order (its error message lists them so).
ALLOWED_JOB_FIELDS = ("settings", "requires", "image", "environment", "annotations", "sourcePaths")
# What the file's `shared` replaces in every template job when it sets it.
_SHARED_REPLACED = (
    "image",
    "matrix",
    "steps",
    "template",
    "description",
    "cache",
    "parameters",
    "provider",
)


class PipelineTemplateLookup(Protocol):
    """Finds one published pipeline template version; None when there is none."""

    def __call__(
        self, namespace: str, name: str, version_or_tag: str | None
    ) -> Mapping[str, Any] | None:
        """Return ``{id, namespace, name, version, config}`` or None."""
        ...


def split_pipeline_template_name(full_name: str) -> tuple[str, str, str | None]:
    """``ns/name@version-or-tag`` to its parts (the schema has checked the shape)."""
    path, _, version_or_tag = full_name.partition("@")
    namespace, _, name = path.partition("/")
    return namespace, name, version_or_tag or None


def _is_empty(value: Any) -> bool:
    return isinstance(value, list | dict) and not value


def _merge_shared(shared: Any, jobs: dict[str, Any]) -> dict[str, Any]:
    """Lay the file's `shared` over every template job (the file's values win)."""
    result = {}
    for name, job in jobs.items():
        new_job = copy.deepcopy(job)
        if shared is not None:
            old_job = copy.deepcopy(shared)
            for key in _SHARED_REPLACED:
                if truthy(old_job.get(key)):
                    new_job[key] = old_job[key]
            if old_job.get("settings") == {}:
                new_job["settings"] = old_job["settings"]
            merge(new_job, old_job)
        result[name] = new_job
    return result


def _merge_job(name: str, template_job: dict[str, Any], user_job: dict[str, Any]) -> dict[str, Any]:
    """Lay the file's settings of one template job over it; refuse any other field."""
    if any(field not in ALLOWED_JOB_FIELDS for field in user_job):
        raise ConfigError(
            f'Job "{name}" has unsupported fields in user yaml. '
            f"Can only set {','.join(ALLOWED_JOB_FIELDS)}."
        )
    new_job = copy.deepcopy(template_job)
    for key in ("image", "requires"):
        if truthy(user_job.get(key)):
            new_job[key] = user_job[key]
    for key in ("environment", "annotations"):
        if key in user_job or key in new_job:
            new_job[key] = {**(new_job.get(key) or {}), **(user_job.get(key) or {})}
    if "sourcePaths" in user_job or "sourcePaths" in new_job:
        # A single path as a string is spread into its characters, as the reference does.
        paths = [*(new_job.get("sourcePaths") or []), *(user_job.get("sourcePaths") or [])]
        new_job["sourcePaths"] = list(dict.fromkeys(paths))
    if user_job.get("settings") == {}:
        new_job["settings"] = {}
    else:
        new_job["settings"] = {
            **(new_job.get("settings") or {}),
            **(user_job.get("settings") or {}),
        }
    return new_job


def _merge_cache(data: dict[str, Any], pipeline: dict[str, Any]) -> None:
    theirs = pipeline.get("cache") or {}
    ours = data.get("cache") or {}
    cache = {**theirs, **ours}
    if not _is_empty(theirs.get("job") or {}):
        cache["job"] = {**theirs["job"], **(ours.get("job") or {})}
    if _is_empty(cache):
        pipeline.pop("cache", None)
    else:
        pipeline["cache"] = cache


def _merge_subscribe(data: dict[str, Any], pipeline: dict[str, Any]) -> None:
    theirs = pipeline.get("subscribe") or {}
    ours = data.get("subscribe") or {}
    new_urls = ours.get("scmUrls") or []
    old_urls = theirs.get("scmUrls") or []
    if old_urls or new_urls:
        # A template entry goes when the file has one with the same URLs (in the same order).
        kept = [old for old in old_urls if not any(list(new) == list(old) for new in new_urls)]
        pipeline["subscribe"] = {**theirs, **ours, "scmUrls": [*kept, *new_urls]}


def _merge_parameters(data: dict[str, Any], pipeline: dict[str, Any]) -> None:
    parameters = data.get("parameters") or {}
    for key, value in (pipeline.get("parameters") or {}).items():
        if key not in parameters:
            parameters[key] = value
            continue
        own = parameters[key]
        own_description = own.get("description") if isinstance(own, dict) else None
        their_description = value.get("description") if isinstance(value, dict) else None
        if not truthy(own_description) and truthy(their_description):
            parameters[key] = {"value": own, "description": their_description}
    pipeline["parameters"] = parameters


def merge_pipeline_template(
    data: dict[str, Any], lookup: PipelineTemplateLookup | None
) -> dict[str, Any]:
    """Return the document the file and the pipeline template it names make together."""
    full_name = data["template"]
    namespace, name, version_or_tag = split_pipeline_template_name(full_name)
    template = lookup(namespace, name, version_or_tag) if lookup else None
    if template is None:
        raise ConfigError(f"Pipeline template {full_name} does not exist")
    pipeline: dict[str, Any] = copy.deepcopy(dict(template.get("config") or {}))
    pipeline["jobs"] = _merge_shared(data.get("shared"), pipeline.get("jobs") or {})
    for job_name, user_job in (data.get("jobs") or {}).items():
        if job_name in pipeline["jobs"]:
            pipeline["jobs"][job_name] = _merge_job(
                job_name, pipeline["jobs"][job_name], user_job or {}
            )
        else:
            pipeline["jobs"][job_name] = copy.deepcopy(user_job)
    _merge_cache(data, pipeline)
    _merge_subscribe(data, pipeline)
    _merge_parameters(data, pipeline)
    pipeline["annotations"] = {
        **(pipeline.get("annotations") or {}),
        **(data.get("annotations") or {}),
    }
    if data.get("childPipelines"):
        pipeline["childPipelines"] = data["childPipelines"]
    shared = data.get("shared") or {}
    pipeline["shared"] = {
        "environment": {
            "SD_PIPELINE_TEMPLATE_FULLNAME": f"{template['namespace']}/{template['name']}",
            "SD_PIPELINE_TEMPLATE_NAME": template["name"],
            "SD_PIPELINE_TEMPLATE_NAMESPACE": template["namespace"],
            "SD_PIPELINE_TEMPLATE_VERSION": template["version"],
            **(shared.get("environment") or {}),
        },
        "settings": shared.get("settings") or {},
    }
    if truthy(shared.get("image")):
        pipeline["shared"]["image"] = shared["image"]
    if truthy(shared.get("sourcePaths")):
        pipeline["shared"]["sourcePaths"] = shared["sourcePaths"]
    pipeline["templateVersionId"] = template.get("id")
    return pipeline


def _template_schema() -> Obj:
    """An sd-template.yaml of a pipeline template, as data-schema's pipelineTemplate has it."""
    config_keys = {
        key: CONFIG.keys[key]
        for key in ("jobs", "shared", "parameters", "annotations", "cache", "subscribe", "stages")
        if CONFIG.keys is not None
    }
    return Obj(
        keys={
            "namespace": Str(pattern=NAMESPACE, max=64, required=True),
            "name": Str(pattern=NAME_NO_SLASH, max=64, required=True),
            "version": Str(pattern=VERSION, max=16, required=True),
            "description": Str(max=256, required=True),
            "maintainer": Str(rule=email_rule, max=64, required=True),
            "config": Obj(keys=config_keys, required=True),
        }
    )


def validate_pipeline_template(text: str) -> dict[str, Any]:
    """Return ``{errors, template}`` for a pipeline template's sd-template.yaml.

    A valid template's ``config`` comes back as it is stored: `shared` laid into every job
    (with ``screwdriver.cd/mergeSharedSteps``), plus its ``workflowGraph``. Raises ConfigError
    when the text is not YAML at all.
    """
    document = load_spec_document(text)
    if not isinstance(document, dict):
        raise ConfigError("an sd-template.yaml must be a mapping with name, version and config")
    template, reports = validate(_template_schema(), document)
    if reports:
        return {"errors": [template_error(report) for report in reports], "template": template}
    config = template["config"]
    shared = config.pop("shared", None) or {}
    jobs = flatten_shared_into_jobs(shared, config["jobs"])
    for job in jobs.values():
        merge_shared_steps(shared, job)
        (job.get("annotations") or {}).pop("screwdriver.cd/mergeSharedSteps", None)
    config["jobs"] = jobs
    template["workflowGraph"] = build_workflow_graph(jobs)
    return {"errors": [], "template": template}
