"""Parse a screwdriver.yaml into what Screwdriver's ``parsePipelineYaml({yaml})`` returns."""

from __future__ import annotations

import logging
import shlex
from typing import Any

from .annotations import annotation_warnings
from .definitions import CONFIG, CONFIG_AFTER_TEMPLATE, CONFIG_WITH_TEMPLATE
from .errors import ConfigError, SchemaError
from .flatten import check_additional_rules, flatten_cache, flatten_shared_into_jobs, flatten_stages
from .graph import build_workflow_graph, has_cycle
from .jobs import (
    check_duplicate_steps,
    job_errors,
    permutations,
    stage_errors,
    steps_to_commands,
    stringify_environment,
)
from .jsvalues import holds_lone_surrogate
from .loader import load_document
from .notifications import notification_errors
from .pipeline_template import PipelineTemplateLookup, merge_pipeline_template
from .schema import validate
from .templates import TemplateLookup, flatten_templates, resolve_template, version_warnings

__all__ = [
    "ConfigError",
    "PipelineTemplateLookup",
    "TemplateLookup",
    "fallback_pipeline",
    "parse_pipeline_yaml",
    "resolve_template",
]

logger = logging.getLogger(__name__)

FALLBACK_IMAGE = "node:18"
FALLBACK_JOB = "main"


def parse_pipeline_yaml(
    text: str,
    *,
    templates: TemplateLookup | None = None,
    pipeline_templates: PipelineTemplateLookup | None = None,
) -> dict[str, Any]:
    """Parse screwdriver.yaml text; on any error return the failing fallback pipeline.

    ``templates`` finds the job templates the file names, ``pipeline_templates`` the pipeline
    template a top-level ``template:`` names; without them, none exist.
    """
    try:
        result = _parse(text, templates, pipeline_templates)
    except ConfigError as exc:
        return fallback_pipeline(exc.render())
    except Exception:  # the contract is "never raises"; a bug here must not break callers
        logger.exception("unexpected failure while parsing a screwdriver.yaml")
        return fallback_pipeline(
            "Error: the server could not parse this screwdriver.yaml; please report it"
        )
    if holds_lone_surrogate(result):
        # Deliberate difference (docs/config-language.md): the reference accepts "\ud800",
        # but no datastore can hold it, so an event on such a file could not be saved.
        return fallback_pipeline(
            "Error: screwdriver.yaml holds a lone UTF-16 surrogate escape (like \\ud800): "
            "use valid Unicode"
        )
    return result


def fallback_pipeline(error: str) -> dict[str, Any]:
    """Return the pipeline whose only job fails with error, plus ``errors: [error]``."""
    # Deliberate difference (docs/config-language.md): the reference quotes with the
    # shell-escape package, we with shlex.quote; either way no YAML text can run as shell.
    command = f"echo {shlex.quote(error)}; exit 1"
    return {
        "annotations": {},
        "jobs": {
            FALLBACK_JOB: [
                {
                    "image": FALLBACK_IMAGE,
                    "commands": [{"name": "config-parse-error", "command": command}],
                    "secrets": [],
                    "environment": {"SD_SKIP_REPOSITORY_CLONE": "true"},
                }
            ]
        },
        "workflowGraph": {
            "nodes": [
                {"name": "~pr"},
                {"name": "~commit"},
                {"name": FALLBACK_JOB},
                {"name": "~pr:/.*/"},
            ],
            "edges": [
                {"src": "~pr", "dest": FALLBACK_JOB},
                {"src": "~commit", "dest": FALLBACK_JOB},
                {"src": "~pr:/.*/", "dest": FALLBACK_JOB},
            ],
        },
        "errors": [error],
    }


def _schema_error(reports: list[Any]) -> SchemaError:
    # Joi says each distinct message once.
    return SchemaError(". ".join(dict.fromkeys(report.message for report in reports)))


def _parse(
    text: str, templates: TemplateLookup | None, pipeline_templates: PipelineTemplateLookup | None
) -> dict[str, Any]:
    """Run the phases in the reference's order; each raises ConfigError on a user error."""
    document = load_document(text)
    with_template = isinstance(document, dict) and "template" in document
    data, reports = validate(CONFIG_WITH_TEMPLATE if with_template else CONFIG, document)
    if reports:
        raise _schema_error(reports)
    template_version_id = None
    if data.get("template"):
        merged = merge_pipeline_template(data, pipeline_templates)
        data, reports = validate(CONFIG_AFTER_TEMPLATE, merged)
        if reports:
            raise _schema_error(reports)
        template_version_id = data.get("templateVersionId")
    check_additional_rules(data)
    shared: dict[str, Any] = data.get("shared") or {}
    warnings = version_warnings(data)

    jobs, stages = flatten_stages(data)
    jobs = flatten_shared_into_jobs(shared, jobs)
    jobs, template_warnings = flatten_templates(jobs, shared, data["parameters"], templates)
    warnings.extend(template_warnings)
    for job in jobs.values():
        stringify_environment(job)
        steps_to_commands(job)
    flatten_cache(data.get("cache"), jobs)
    check_duplicate_steps(jobs)

    errors = [error for name, job in jobs.items() for error in job_errors(name, job)]
    errors.extend(stage_errors(stages, jobs))
    graph = build_workflow_graph(jobs)
    if has_cycle(graph):
        errors.append("Jobs: should not have circular dependency in jobs")
    errors.extend(notification_errors(jobs))
    if errors:
        raise ConfigError("\n".join(errors))

    annotations = data.get("annotations") or {}
    warnings.extend(annotation_warnings(annotations, jobs))
    result: dict[str, Any] = {
        "annotations": annotations,
        "jobs": {name: permutations(name, job) for name, job in jobs.items()},
        "workflowGraph": graph,
        "parameters": data["parameters"],
        "subscribe": data.get("subscribe") or {},
    }
    if warnings:
        result["warnMessages"] = warnings
    if data.get("childPipelines"):
        result["childPipelines"] = data["childPipelines"]
    if stages:
        result["stages"] = stages
    if template_version_id:
        result["templateVersionId"] = template_version_id
    return result
