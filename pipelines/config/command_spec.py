"""An sd-command.yaml checked as Screwdriver's command schema checks it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .loader import load_spec_document
from .notifications import is_email

NAME = re.compile(r"^[\w-]{1,64}\Z", re.ASCII)
VERSION = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?\Z", re.ASCII)
EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+\Z", re.ASCII)
TAG = re.compile(r"^[a-zA-Z][\w.-]{0,29}\Z", re.ASCII)
FORMATS = ("binary", "habitat", "docker")
HABITAT_MODES = ("remote", "local")
# A file name inside the build's workspace, as sd-cmd publish uploads it.
FILE = re.compile(r"^[^\0]{1,1024}\Z")


@dataclass(frozen=True)
class CommandIdentity:
    """A valid spec's namespace, name and the version it asks for."""

    namespace: str
    name: str
    major: int
    minor: int | None


def _error(path: list[str], message: str, kind: str) -> dict[str, Any]:
    return {"message": message, "path": path, "type": kind}


def _string(
    spec: dict[str, Any],
    key: str,
    errors: list[dict[str, Any]],
    *,
    path: list[str] | None = None,
    required: bool = False,
    pattern: re.Pattern[str] | None = None,
    limit: int = 256,
) -> None:
    where = [*(path or []), key]
    label = ".".join(where)
    if key not in spec:
        if required:
            errors.append(_error(where, f'"{label}" is required', "any.required"))
        return
    value = spec[key]
    if not isinstance(value, str):
        errors.append(_error(where, f'"{label}" must be a string', "string.base"))
    elif len(value) > limit:
        errors.append(
            _error(where, f'"{label}" must be at most {limit} characters long', "string.max")
        )
    elif pattern is not None and not pattern.match(value):
        errors.append(
            _error(where, f'"{label}" fails to match the required pattern', "string.pattern.base")
        )


def check_spec(spec: Any) -> list[dict[str, Any]]:
    """The errors of a command spec (a parsed sd-command.yaml), as Joi details."""
    if not isinstance(spec, dict):
        return [_error([], '"value" must be of type object', "object.base")]
    errors: list[dict[str, Any]] = []
    _string(spec, "namespace", errors, required=True, pattern=NAME, limit=64)
    _string(spec, "name", errors, required=True, pattern=NAME, limit=64)
    _string(spec, "version", errors, required=True, pattern=VERSION, limit=16)
    _string(spec, "description", errors, required=True)
    _string(spec, "maintainer", errors, required=True)
    _string(spec, "usage", errors, limit=4096)
    maintainer = spec.get("maintainer")
    if isinstance(maintainer, str) and not is_email(maintainer):
        errors.append(_error(["maintainer"], '"maintainer" must be a valid email', "string.email"))
    form = spec.get("format")
    if form not in FORMATS:
        errors.append(
            _error(["format"], '"format" must be one of [binary, habitat, docker]', "any.only")
        )
        return errors
    section = spec.get(form)
    if not isinstance(section, dict):
        errors.append(_error([form], f'"{form}" is required', "any.required"))
        return errors
    for other in FORMATS:
        if other != form and other in spec:
            errors.append(_error([other], f'"{other}" is not allowed', "object.unknown"))
    if form == "binary":
        _string(section, "file", errors, path=["binary"], required=True, pattern=FILE, limit=1024)
    elif form == "habitat":
        mode = section.get("mode")
        if mode not in HABITAT_MODES:
            errors.append(
                _error(
                    ["habitat", "mode"], '"habitat.mode" must be one of [remote, local]', "any.only"
                )
            )
        _string(section, "package", errors, path=["habitat"], required=True)
        _string(section, "command", errors, path=["habitat"], required=True)
        _string(
            section,
            "file",
            errors,
            path=["habitat"],
            required=mode == "local",
            pattern=FILE,
            limit=1024,
        )
    else:
        _string(section, "image", errors, path=["docker"], required=True)
        _string(section, "command", errors, path=["docker"])
    return errors


def parse_spec(text: str) -> dict[str, Any]:
    """The sd-command.yaml's document; ConfigError when it is not YAML."""
    return load_spec_document(text) or {}


def identity_of(spec: dict[str, Any]) -> CommandIdentity:
    """A valid spec's namespace, name and version numbers."""
    match = VERSION.match(str(spec["version"]))
    if match is None:  # check_spec has refused it already
        raise ConfigError(f"version {spec['version']} is not major[.minor[.patch]]")
    minor = match.group(2)
    return CommandIdentity(
        str(spec["namespace"]),
        str(spec["name"]),
        int(match.group(1)),
        int(minor) if minor is not None else None,
    )
