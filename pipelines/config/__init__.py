"""Parse a screwdriver.yaml into what Screwdriver's ``parsePipelineYaml({yaml})`` returns."""

from __future__ import annotations

import logging
import shlex
from typing import Any

from .annotations import annotation_warnings
from .definitions import CONFIG, UNSUPPORTED_JOB_KEYS, UNSUPPORTED_TOP_KEYS
from .errors import ConfigError, SchemaError
from .graph import build_workflow_graph, has_cycle
from .jobs import (
    check_duplicate_steps,
    check_teardown_order,
    job_errors,
    merge_shared,
    permutations,
    steps_to_commands,
    stringify_environment,
)
from .loader import load_document
from .schema import validate

__all__ = ["ConfigError", "fallback_pipeline", "parse_pipeline_yaml"]

logger = logging.getLogger(__name__)

FALLBACK_IMAGE = "node:18"
FALLBACK_JOB = "main"


def parse_pipeline_yaml(text: str) -> dict[str, Any]:
    """Parse screwdriver.yaml text; on any error return the failing fallback pipeline."""
    try:
        return _parse(text)
    except ConfigError as exc:
        return fallback_pipeline(exc.render())
    except Exception:  # the contract is "never raises"; a bug here must not break callers
        logger.exception("unexpected failure while parsing a screwdriver.yaml")
        return fallback_pipeline(
            "Error: the server could not parse this screwdriver.yaml; please report it"
        )


def fallback_pipeline(error: str) -> dict[str, Any]:
    """Return the pipeline whose only job fails with error, plus ``errors: [error]``."""
    # The reference shell-escapes too; shlex.quote makes sure no YAML text can run as shell.
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


def _parse(text: str) -> dict[str, Any]:
    """Run the phases in the reference's order; each raises ConfigError on a user error."""
    document = load_document(text)
    data, reports = validate(CONFIG, document)
    if reports:
        raise SchemaError(". ".join(report.message for report in reports))
    _refuse_unsupported(data)
    shared: dict[str, Any] = data.get("shared") or {}
    check_teardown_order(data["jobs"])

    jobs = {name: merge_shared(shared, job or {}) for name, job in data["jobs"].items()}
    for job in jobs.values():
        stringify_environment(job)
        steps_to_commands(job)
    check_duplicate_steps(jobs)

    errors = [error for name, job in jobs.items() for error in job_errors(name, job)]
    graph = build_workflow_graph(jobs)
    if has_cycle(graph):
        errors.append("Jobs: should not have circular dependency in jobs")
    if errors:
        raise ConfigError("\n".join(errors))

    annotations = data.get("annotations") or {}
    warnings = annotation_warnings(annotations, jobs)
    result: dict[str, Any] = {
        "annotations": annotations,
        "jobs": {name: permutations(name, job) for name, job in jobs.items()},
        "workflowGraph": graph,
        "parameters": data.get("parameters") or {},
        "subscribe": data.get("subscribe") or {},
    }
    if warnings:
        result["warnMessages"] = warnings
    if data.get("childPipelines"):
        result["childPipelines"] = data["childPipelines"]
    return result


def _refuse_unsupported(data: dict[str, Any]) -> None:
    """Refuse keys this server does not implement yet, naming them, instead of ignoring them."""
    found = [f'"{key}"' for key in UNSUPPORTED_TOP_KEYS if key in data]
    for section, job in [("shared", data.get("shared") or {}), *data["jobs"].items()]:
        found.extend(f'"{section}.{key}"' for key in UNSUPPORTED_JOB_KEYS if key in (job or {}))
    if found:
        raise ConfigError(
            f"{', '.join(found)} not supported by this Screwdriver server yet; "
            "remove them to run this pipeline here"
        )
