"""Lay `shared`, stages and the cache settings into flat job definitions, as the reference does."""

from __future__ import annotations

import copy
import re
from typing import Any

from .errors import ConfigError, ConfigErrorList, TypeErrorLike
from .jsvalues import truthy

# Keys a job takes wholesale from itself when set, else from `shared`.
REPLACED_FIELDS = (
    "image",
    "matrix",
    "steps",
    "template",
    "description",
    "cache",
    "parameters",
    "provider",
)
STAGE_TRIGGER = re.compile(r"^~?stage@([\w-]+)(?::([\w-]+))?$", re.ASCII)
_STAGE_SETUP_TEARDOWN = re.compile(r"stage@[\w-]+:(?:setup|teardown)$", re.ASCII)
_MISSING = object()


def as_list(value: Any) -> list[Any]:
    """Return ``[].concat(value)``."""
    return list(value) if isinstance(value, list) else [value]


def step_key(step: Any) -> str | None:
    """Return ``Object.keys(step)[0]``: a mapping's first key, "0" for a non-empty string."""
    if isinstance(step, dict):
        return next(iter(step), None)
    if isinstance(step, str | list) and step:
        return "0"
    return None


def step_body(step: Any, key: str | None) -> Any:
    """Return ``step[key]`` for a step item (a string's first character for key "0")."""
    if isinstance(step, dict):
        return step.get(key) if key is not None else None
    if key == "0" and step:
        return step[0]
    return None


def check_additional_rules(data: dict[str, Any]) -> None:
    """Refuse misplaced user teardown steps and cache settings for jobs that do not exist."""
    errors = []
    cache_jobs = (data.get("cache") or {}).get("job") or {}
    for job in data["jobs"].values():
        seen_teardown = False
        for step in (job or {}).get("steps") or []:
            key = step_key(step)
            is_teardown = key is not None and key.startswith("teardown-")
            if seen_teardown and not is_teardown:
                errors.append("User teardown steps need to be at the end")
            seen_teardown = seen_teardown or is_teardown
        # The reference checks the cache once per job, so the error repeats per job.
        errors.extend(
            f"Cache is set for non-existing job: {name}"
            for name in cache_jobs
            if name not in data["jobs"]
        )
    if errors:
        raise ConfigErrorList(errors)


def _compress_steps(steps: list[Any], locked: list[str] | None) -> dict[str, Any]:
    """Index steps by name; a ``{command}``-only body becomes its command."""
    indexed: dict[str, Any] = {}
    for item in steps:
        key = step_key(item)
        if key is None:
            continue
        body = step_body(item, key)
        if isinstance(body, dict) and len(body) == 1:
            indexed[key] = body.get("command")
        else:
            if locked is not None and isinstance(body, dict) and "locked" in body:
                locked.append(key)
            indexed[key] = body
    return indexed


def _locked(body: Any) -> Any:
    """Return a step body's ``locked`` flag (None for a plain command)."""
    return body.get("locked") if isinstance(body, dict) else None


def merge(
    new_job: dict[str, Any], old_job: dict[str, Any], from_template: bool = False
) -> list[str]:
    """Lay old_job over new_job in place (maps merged, lists unioned); return warnings."""
    for key in ("annotations", "environment", "settings"):
        merged = new_job.get(key) or {}
        merged.update(old_job.get(key) or {})
        new_job[key] = merged
    image = old_job.get("image") or new_job.get("image")
    if image:
        new_job["image"] = image
    else:
        new_job.pop("image", None)
    if old_job.get("description"):
        new_job["description"] = old_job["description"]
    for key in ("requires", "blockedBy", "freezeWindows"):
        if truthy(old_job.get(key)):
            new_job[key] = as_list(old_job[key])
    if truthy(old_job.get("cache")) or old_job.get("cache") is False:
        new_job["cache"] = old_job["cache"]
    if truthy(old_job.get("order")):
        new_job["order"] = as_list(old_job["order"])
    for key in ("provider", "stage"):
        if truthy(old_job.get(key)):
            new_job[key] = old_job[key]
    new_job["secrets"] = list(
        dict.fromkeys([*(new_job.get("secrets") or []), *(old_job.get("secrets") or [])])
    )
    new_job["sourcePaths"] = list(
        dict.fromkeys(
            [*as_list(new_job.get("sourcePaths") or []), *as_list(old_job.get("sourcePaths") or [])]
        )
    )
    if not from_template:
        return []
    return _merge_template_steps(new_job, old_job)


def _merge_template_steps(new_job: dict[str, Any], old_job: dict[str, Any]) -> list[str]:
    """Merge a job's steps into its template's: order, pre/post steps, locked steps."""
    warnings: list[str] = []
    locked_names: list[str] = []
    template_steps = new_job.get("steps")
    new_steps = _compress_steps(template_steps or [], locked_names)
    old_steps = _compress_steps(old_job.get("steps") or [], None)
    order = old_job.get("order")
    teardown: list[Any] = []
    if not truthy(order):
        teardown = [
            key
            for key in (step_key(item) for item in old_job.get("steps") or [])
            if key is not None and key.startswith("teardown-")
        ]
    merged: list[dict[str, Any]] = []
    name = old_job.get("template")
    if isinstance(order, list):
        if not all(step in order for step in locked_names):
            raise ConfigError(
                f"Order must contain template {name} locked steps: {','.join(locked_names)}"
            )
        ordered_teardown: list[dict[str, Any]] = []
        for step_name in order:
            locked = _locked(new_steps.get(step_name))
            step = None
            if not locked and old_steps.get(step_name):
                step = {step_name: old_steps[step_name]}
            elif locked or new_steps.get(step_name):
                step = {step_name: new_steps.get(step_name)}
                if locked and old_steps.get(step_name):
                    warnings.append(
                        f"Cannot override locked step {step_name}; "
                        f"using step definition from template {name}"
                    )
            else:
                warnings.append(f"{step_name} step definition not found; skipping")
            if step is not None:
                (ordered_teardown if step_name.startswith("teardown-") else merged).append(step)
        new_job["steps"] = merged + ordered_teardown
        return warnings
    if not truthy(old_job.get("steps")):
        return warnings
    if template_steps is None:
        raise TypeErrorLike("Cannot read properties of undefined (reading 'length')")
    for item in template_steps:
        # JS would print a missing key as "undefined"; a template step always has one.
        step_name = step_key(item) or "undefined"
        if old_steps.get(f"pre{step_name}"):
            merged.append({f"pre{step_name}": old_steps[f"pre{step_name}"]})
        locked = _locked(step_body(item, step_name))
        if locked or not old_steps.get(step_name):
            merged.append(item)
            if locked and old_steps.get(step_name):
                warnings.append(
                    f"Cannot override locked step {step_name}; "
                    f"using step definition from template {name}"
                )
        elif not step_name.startswith("teardown-"):
            merged.append({step_name: old_steps[step_name]})
        if old_steps.get(f"post{step_name}"):
            merged.append({f"post{step_name}": old_steps[f"post{step_name}"]})
    merged.extend({step_name: old_steps.get(step_name)} for step_name in teardown)
    new_job["steps"] = merged
    return warnings


def flatten_shared_into_jobs(
    shared: dict[str, Any], jobs: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Return each job laid over a copy of `shared`."""
    result = {}
    for name, job in jobs.items():
        new_job = copy.deepcopy(shared)
        old_job = copy.deepcopy(job)
        for key in REPLACED_FIELDS:
            if truthy(old_job.get(key)):
                new_job[key] = old_job[key]
        if old_job.get("settings", _MISSING) == {}:
            new_job["settings"] = old_job["settings"]
        merge(new_job, old_job)
        result[name] = new_job
    return result


def _teardown_trigger(requires: Any) -> Any:
    """Point a bare stage trigger (``stage@x``, ``~stage@x``) at the stage's teardown job."""

    def convert(trigger: Any) -> Any:
        match = STAGE_TRIGGER.search(trigger) if isinstance(trigger, str) else None
        return f"{trigger}:teardown" if match and not match.group(2) else trigger

    return [convert(item) for item in requires] if isinstance(requires, list) else convert(requires)


def _teardown_requires(jobs: dict[str, dict[str, Any]], stage_name: str) -> list[str]:
    """Return the stage's terminal jobs: the ones no other job of the stage requires."""
    requires: list[Any] = []
    names = []
    for name, job in jobs.items():
        stage = job.get("stage")
        if stage and stage.get("name") == stage_name and not _STAGE_SETUP_TEARDOWN.search(name):
            requires.extend(
                job["requires"] if isinstance(job.get("requires"), list) else [job.get("requires")]
            )
            names.append(name)
    return [name for name in names if name not in requires and f"~{name}" not in requires]


def _default_stage_job() -> dict[str, Any]:
    """Return the virtual no-op job that stands in for an absent stage setup or teardown."""
    return {
        "image": "node:18",
        "steps": [{"noop": "echo noop"}],
        "annotations": {"screwdriver.cd/virtualJob": True},
    }


def flatten_stages(
    data: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
    """Add each stage's setup and teardown jobs and point stage triggers at them."""
    jobs = copy.deepcopy(data["jobs"])
    stages = copy.deepcopy(data.get("stages"))
    if not stages:
        return jobs, stages
    for stage_name, stage in stages.items():
        members = stage.get("jobs")
        setup_name = f"stage@{stage_name}:setup"
        for name, job in jobs.items():
            if members is None:
                raise TypeErrorLike("Cannot read properties of undefined (reading 'includes')")
            if name in members:
                job["stage"] = {"name": stage_name}
                if not truthy(job.get("requires")) or job["requires"] == []:
                    job["requires"] = f"~{setup_name}"
            elif "requires" in job:
                job["requires"] = _teardown_trigger(job["requires"])
        if "requires" in stage:
            stage["requires"] = _teardown_trigger(stage["requires"])
        setup = stage.get("setup")
        teardown = stage.get("teardown")
        if setup == {} or setup is None:
            setup = _default_stage_job()
        if teardown == {} or teardown is None:
            teardown = _default_stage_job()
        source_paths = (
            setup["sourcePaths"] if "sourcePaths" in setup else stage.get("sourcePaths") or []
        )
        jobs[setup_name] = {
            **setup,
            "requires": stage.get("requires") or [],
            "stage": {"name": stage_name},
            "sourcePaths": source_paths,
        }
        jobs[f"stage@{stage_name}:teardown"] = {
            **teardown,
            "requires": _teardown_requires(jobs, stage_name),
            "stage": {"name": stage_name},
        }
        stage.pop("teardown", None)
        stage.pop("setup", None)
    return jobs, stages


def flatten_cache(cache: Any, jobs: dict[str, dict[str, Any]]) -> None:
    """Give every job not opted out the pipeline, event and its own cache directories."""
    if not cache:
        if any("cache" in job for job in jobs.values()):
            raise ConfigError("Cache disable/enable is set without the cache setting itself.")
        return
    for name, job in jobs.items():
        if job.get("cache") is False:
            del job["cache"]
            continue
        job["cache"] = {
            "pipeline": copy.deepcopy(cache.get("pipeline", [])),
            "event": copy.deepcopy(cache.get("event", [])),
            "job": copy.deepcopy((cache.get("job") or {}).get(name, [])),
        }
