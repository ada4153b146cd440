"""Turn validated job definitions into runnable job permutations (shared merge, steps, checks)."""

from __future__ import annotations

import copy
import re
from typing import Any

from .definitions import IMAGE
from .errors import ConfigError, SchemaError, TypeErrorLike
from .jsvalues import JsDate, js_stringify, truthy

MAX_ENVIRONMENT_VARS = 100
MAX_PERMUTATIONS = 25
# Variables Screwdriver sets itself; they do not count against the user's limit.
SD_ENV = frozenset(
    f"SD_{prefix}TEMPLATE_{part}"
    for prefix in ("", "PIPELINE_")
    for part in ("FULLNAME", "NAME", "NAMESPACE", "VERSION")
)
_TEMPLATE_TOKEN = re.compile(r"\{\{\s*([a-z0-9_][.a-z0-9_]*)\s*\}\}", re.IGNORECASE)


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
        command = (body.get("command") or body) if isinstance(body, dict) else body
        entry = {"name": name, "command": command}
        if isinstance(body, dict) and truthy(body.get("locked")):
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


_OPTIONAL_FIELDS = (
    "cache",
    "description",
    "templateId",
    "parameters",
    "provider",
    "requires",
    "blockedBy",
    "freezeWindows",
    "stage",
)


def _combinations(matrix: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Return the matrix permutations in the reference's order.

    The reference treats a falsy value (0, false, "", null) as "not chosen yet" and then
    crashes; we fail the same way rather than run a different set of permutations.
    """
    keys = list(matrix)
    result: list[dict[str, Any]] = []

    def walk(chosen: dict[str, Any], index: int) -> None:
        if all(truthy(chosen.get(key)) for key in keys):
            result.append(chosen)
            return
        if index >= len(keys):
            raise TypeErrorLike("Cannot read properties of undefined (reading 'forEach')")
        for value in matrix[keys[index]]:
            walk({**chosen, keys[index]: value}, index + 1)

    walk({}, 0)
    return result


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
    result = []
    for combination in _combinations(job.get("matrix") or {}):
        task = copy.deepcopy(base)
        for name, value in combination.items():
            task["environment"][name] = (
                value
                if isinstance(value, str) and not isinstance(value, JsDate)
                else js_stringify(value)
            )
        task["image"] = fill_image(task["image"], task["environment"])
        _, reports = IMAGE.check(task["image"], ("jobs", job_name, "image"), {})
        if reports:
            raise SchemaError(". ".join(dict.fromkeys(report.message for report in reports)))
        result.append(task)
    return result


def _js_join(value: Any) -> str:
    """Return ``String(value)`` for a string or a list of strings."""
    return ",".join(value) if isinstance(value, list) else str(value)


def stage_errors(stages: dict[str, Any] | None, jobs: dict[str, dict[str, Any]]) -> list[str]:
    """Return the errors of stage membership: duplicates, unknown jobs, outside triggers."""
    if not stages:
        return []
    errors = []
    listed = [name for stage in stages.values() for name in stage.get("jobs") or []]
    duplicates = [name for index, name in enumerate(listed) if listed.index(name) != index]
    if duplicates:
        errors.append(f"Cannot have duplicate job in multiple stages: {','.join(duplicates)}")
    missing = [name for name in listed if name not in jobs]
    if missing:
        errors.append(f"Cannot have nonexistent job in stages: {','.join(missing)}")
    for stage_name, stage in stages.items():
        members = list(stage.get("jobs") or [])
        if f"stage@{stage_name}:setup" not in members:
            members.append(f"stage@{stage_name}:setup")
        for name in stage.get("jobs") or []:
            requires = (jobs.get(name) or {}).get("requires")
            if not truthy(requires) or not requires:
                continue
            triggers = requires if isinstance(requires, list) else [requires]
            if not all(re.sub(r"^~", "", trigger) in members for trigger in triggers):
                errors.append(
                    f"{name} job has invalid requires: {_js_join(requires)}. "
                    f"Triggers must be jobs from {stage_name} stage."
                )
    errors.extend(
        f"Job {name} in stage cannot have sourcePaths defined."
        for name in listed
        if name in jobs and jobs[name].get("sourcePaths")
    )
    return errors
