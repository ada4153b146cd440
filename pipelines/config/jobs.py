"""Turn validated job definitions into runnable job permutations (shared merge, steps, checks)."""

from __future__ import annotations

import copy
import itertools
import re
from typing import Any

from .definitions import IMAGE
from .errors import ConfigError, ConfigErrorList, SchemaError
from .jsvalues import JsDate, js_stringify

MAX_ENVIRONMENT_VARS = 100
MAX_PERMUTATIONS = 25
# Variables Screwdriver sets itself; they do not count against the user's limit.
SD_ENV = frozenset(
    f"SD_{prefix}TEMPLATE_{part}"
    for prefix in ("", "PIPELINE_")
    for part in ("FULLNAME", "NAME", "NAMESPACE", "VERSION")
)
# Fields a job takes from itself when set, else from `shared`, wholesale (no merging).
_REPLACED_FIELDS = (
    "image",
    "matrix",
    "steps",
    "template",
    "description",
    "cache",
    "parameters",
    "provider",
)
_TEMPLATE_TOKEN = re.compile(r"\{\{\s*([a-z0-9_][.a-z0-9_]*)\s*\}\}", re.IGNORECASE)


def check_teardown_order(jobs: dict[str, Any]) -> None:
    """Refuse a job whose user teardown steps are not all at the end."""
    messages = []
    for job in jobs.values():
        seen_teardown = False
        for step in job.get("steps") or []:
            is_teardown = isinstance(step, dict) and next(iter(step)).startswith("teardown-")
            if seen_teardown and not is_teardown:
                messages.append("User teardown steps need to be at the end")
            seen_teardown = seen_teardown or is_teardown
    if messages:
        raise ConfigErrorList(messages)


def _truthy(value: Any) -> bool:
    """Return JS truthiness for a JSON-like value ([] and {} are truthy)."""
    if isinstance(value, list | dict):
        return True
    return bool(value)


def _as_list(value: Any) -> list[Any]:
    """Return ``[].concat(value)``."""
    return list(value) if isinstance(value, list) else [value]


def merge_shared(shared: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """Lay one job over `shared`: replaced fields, merged maps, unioned secrets."""
    merged = copy.deepcopy(shared)
    own = copy.deepcopy(job)
    for key in _REPLACED_FIELDS:
        if _truthy(own.get(key)):
            merged[key] = own[key]
    if own.get("settings") == {}:
        merged["settings"] = {}
    for key in ("annotations", "environment", "settings"):
        merged[key] = {**(merged.get(key) or {}), **(own.get(key) or {})}
    merged["image"] = own.get("image") or merged.get("image")
    if merged["image"] is None:
        del merged["image"]
    if own.get("description"):
        merged["description"] = own["description"]
    for key in ("requires", "blockedBy", "freezeWindows"):
        if _truthy(own.get(key)):
            merged[key] = _as_list(own[key])
    merged["secrets"] = list(
        dict.fromkeys([*(merged.get("secrets") or []), *(own.get("secrets") or [])])
    )
    merged["sourcePaths"] = list(
        dict.fromkeys(
            [
                *_as_list(merged.get("sourcePaths") or []),
                *_as_list(own.get("sourcePaths") or []),
            ]
        )
    )
    return merged


def stringify_environment(job: dict[str, Any]) -> None:
    """Turn non-string environment values into JSON text, as the shell needs strings."""
    environment = job.get("environment") or {}
    for name, value in environment.items():
        if not isinstance(value, str) or isinstance(value, JsDate):
            environment[name] = js_stringify(value)


def steps_to_commands(job: dict[str, Any]) -> None:
    """Expand the three step forms into ``[{"name", "command"}]``."""
    commands = []
    for index, step in enumerate(job.get("steps") or []):
        if isinstance(step, str):
            commands.append({"name": f"step-{index + 1}", "command": step})
            continue
        name = list(step)[-1]
        body = step[name]
        command = body.get("command") or body if isinstance(body, dict) else body
        entry = {"name": name, "command": command}
        if isinstance(body, dict) and body.get("locked"):
            entry["locked"] = body["locked"]
        commands.append(entry)
    job["commands"] = commands


def check_duplicate_steps(jobs: dict[str, Any]) -> None:
    """Refuse jobs with two steps of the same name."""
    messages = []
    for job_name, job in jobs.items():
        seen: set[str] = set()
        for command in job["commands"]:
            if command["name"] in seen:
                messages.append(f"Job {job_name} has duplicate step: {command['name']}")
            seen.add(command["name"])
    if messages:
        raise ConfigError(",".join(messages))


def job_errors(job_name: str, job: dict[str, Any]) -> list[str]:
    """Return the functional errors of one flattened job, in the reference's order."""
    prefix = f'Job "{job_name}"'
    errors = []
    if not job["commands"]:
        errors.append(f'{prefix} "commands" must contain at least 1 items')
    elif "image" not in job:
        errors.append(f'{prefix} "image" is required')
    user_env = [name for name in job.get("environment") or {} if name not in SD_ENV]
    if len(user_env) > MAX_ENVIRONMENT_VARS:
        errors.append(
            f'"environment" can only have {MAX_ENVIRONMENT_VARS} environment variables defined'
        )
    if job_name.lower().startswith("pr-"):
        errors.append(f'{prefix}: cannot use a restricted prefix "pr-"')
    matrix = job.get("matrix") or {}
    size = len(matrix) + len(user_env)
    if size > MAX_ENVIRONMENT_VARS:
        errors.append(
            f'{prefix}: "environment" and "matrix" can only have a combined  maxiumum of '
            f"{MAX_ENVIRONMENT_VARS} environment variables defined (currently {size})"
        )
    permutations = 1
    for values in matrix.values():
        permutations *= len(values)
    if permutations > MAX_PERMUTATIONS:
        errors.append(
            f'{prefix}: "matrix" cannot contain >{MAX_PERMUTATIONS} permutations '
            f"(currently {permutations})"
        )
    errors.extend(
        f'{prefix}: Step "{command["name"]}": cannot use a restricted prefix "sd-"'
        for command in job["commands"]
        if command["name"].lower().startswith("sd-")
    )
    return errors


def fill_image(image: str, environment: dict[str, Any]) -> str:
    """Replace ``{{NAME}}`` in an image with environment values (a missing name is an error)."""

    def replace(match: re.Match[str]) -> str:
        value: Any = environment
        for part in match.group(1).split("."):
            value = value.get(part) if isinstance(value, dict) else None
            if value is None:
                raise ConfigError(f"tim: '{part}' not found in {match.group(0)}")
        return str(value)

    return _TEMPLATE_TOKEN.sub(replace, image)


_OPTIONAL_FIELDS = ("description", "parameters", "requires", "blockedBy", "freezeWindows")


def permutations(job_name: str, job: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one runnable dict per matrix permutation (one when there is no matrix)."""
    base: dict[str, Any] = {
        "annotations": job.get("annotations") or {},
        "commands": job["commands"],
        "environment": job.get("environment") or {},
        "image": job.get("image"),
        "secrets": job.get("secrets"),
        "settings": job.get("settings") or {},
    }
    base.update((key, job[key]) for key in _OPTIONAL_FIELDS if key in job)
    if job.get("sourcePaths"):
        base["sourcePaths"] = job["sourcePaths"]
    matrix = job.get("matrix") or {}
    result = []
    for combination in itertools.product(*matrix.values()):
        task = copy.deepcopy(base)
        for name, value in zip(matrix, combination, strict=True):
            task["environment"][name] = (
                value
                if isinstance(value, str) and not isinstance(value, JsDate)
                else js_stringify(value)
            )
        task["image"] = fill_image(task["image"], task["environment"])
        _, reports = IMAGE.check(task["image"], ("jobs", job_name, "image"), {})
        if reports:
            raise SchemaError(". ".join(report.message for report in reports))
        result.append(task)
    return result
