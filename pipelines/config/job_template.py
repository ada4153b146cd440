"""An sd-template.yaml (a job template) checked as Screwdriver's template validator checks it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .definitions import IMAGE, JOB
from .errors import ConfigError
from .loader import load_spec_document
from .notifications import is_email
from .schema import JsRegex, Messages, Obj, Path, Report, Str, label, validate
from .templates import DEFAULT_NAMESPACE

NAMESPACE = JsRegex(r"^[\w-]+$")
NAME_ALLOW_SLASH = JsRegex(r"^(?:([\w-]+)\/)?([\w-]+)$")
NAME_NO_SLASH = JsRegex(r"^[\w-]+$")
VERSION = JsRegex(r"^(\d+)(\.\d+)?(\.\d+)?$")
EXACT_VERSION = JsRegex(r"^(\d+)\.(\d+)\.(\d+)$")
TAG = JsRegex(r"^[a-zA-Z][\w-.]+$")
IMAGE_ALIAS = JsRegex(r"^[\w-.:]+$")
_VERSION_PARTS = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?$", re.ASCII)


def email_rule(value: str, path: Path, messages: Messages) -> Report | None:
    return (
        None
        if is_email(value)
        else Report("string.email", path, f"{label(path)} must be a valid email")
    )


def _schema(with_namespace: bool) -> Obj:
    # The name may carry its namespace ("ns/name") only when no namespace key is given.
    name = NAME_NO_SLASH if with_namespace else NAME_ALLOW_SLASH
    return Obj(
        keys={
            "namespace": Str(pattern=NAMESPACE, max=64),
            "name": Str(pattern=name, max=64, required=True),
            "version": Str(pattern=VERSION, max=16, required=True),
            "description": Str(max=256, required=True),
            "maintainer": Str(rule=email_rule, max=64, required=True),
            "config": Obj(
                keys=JOB.keys, patterns=JOB.patterns, required=True, any_of=("image", "template")
            ),
            "images": Obj(
                patterns=[(IMAGE_ALIAS, IMAGE)],
                messages={
                    "object.unknown": "{label} only supports the following characters "
                    "A-Z,a-z,0-9,-,_,.,:"
                },
            ),
            "compatibilities": Obj(unknown=True),
        }
    )


def template_error(report: Report) -> dict[str, Any]:
    """One Joi error detail, the shape Screwdriver's validator answers with."""
    key = report.path[-1] if report.path else ""
    return {
        "context": {"key": str(key), "label": label(report.path).strip('"')},
        "message": report.message,
        "path": [part if isinstance(part, int) else str(part) for part in report.path],
        "type": report.code,
    }


def validate_template(text: str) -> dict[str, Any]:
    """Return ``{errors, template}`` for an sd-template.yaml's text.

    Raises ConfigError when the text is not YAML at all (the API answers 400, as Screwdriver).
    """
    document = load_spec_document(text)
    if not isinstance(document, dict):
        raise ConfigError("an sd-template.yaml must be a mapping with name, version and config")
    template, reports = validate(_schema("namespace" in document), document)
    config = template.get("config")
    if (
        isinstance(config, dict)
        and "steps" not in config
        and "template" not in config
        and not any(r.path[:1] == ("config",) and r.code == "object.missing" for r in reports)
    ):
        reports.append(
            Report(
                "object.missing",
                ("config",),
                '"config" must contain at least one of [steps, template]',
            )
        )
    return {"errors": [template_error(r) for r in reports], "template": template}


@dataclass(frozen=True)
class TemplateIdentity:
    """Where a valid template is stored: its namespace, name and ``major.minor`` to publish."""

    namespace: str
    name: str
    major: int
    minor: int | None


def identity_of(template: dict[str, Any]) -> TemplateIdentity:
    """Split a validated template's name and version (``ns/name`` without a namespace key)."""
    namespace = str(template.get("namespace") or "")
    name = str(template["name"])
    if not namespace:
        namespace, slash, rest = name.partition("/")
        namespace, name = (namespace, rest) if slash else (DEFAULT_NAMESPACE, name)
    match = _VERSION_PARTS.match(str(template["version"]))
    if match is None:  # the schema has refused it already
        raise ConfigError(f"version {template['version']} is not major[.minor[.patch]]")
    minor = match.group(2)
    return TemplateIdentity(namespace, name, int(match.group(1)), int(minor) if minor else None)


def version_key(version: str) -> tuple[int, ...]:
    """A published ``major.minor.patch`` as numbers, for comparing versions."""
    return tuple(int(part) for part in version.split(".") if part.isdigit())
