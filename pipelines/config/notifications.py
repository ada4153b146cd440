"""The ``settings.email`` and ``settings.slack`` shapes the reference's notifiers accept."""

from __future__ import annotations

import re
from typing import Any

from .schema import Alt, Arr, Bool, Messages, Obj, Path, Report, Schema, Str, label, validate

BUILD_STATUSES = (
    "ABORTED",
    "CREATED",
    "FAILURE",
    "QUEUED",
    "RUNNING",
    "SUCCESS",
    "BLOCKED",
    "UNSTABLE",
    "COLLAPSED",
    "FROZEN",
)
_ATEXT = re.compile(r"^[\w!#$%&'*+\-/=?^`{|}~]+$", re.ASCII)
_DOMAIN_SEGMENT = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?$")
_TLD_SEGMENT = re.compile(r"^[a-zA-Z](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?$")
_DOMAIN_CONTROL = re.compile(r"[\x00-\x20@:/\\#!$&'()*+,;=?]")


def is_email(value: str) -> bool:
    """Return whether value is an address Joi's string().email() accepts (ASCII addresses).

    Joi also checks the top-level domain against IANA's list; we accept any well-formed one.
    """
    if not value.isascii() or len(value) > 254:
        return False
    parts = value.split("@")
    if len(parts) != 2 or not parts[0] or len(parts[0]) > 64:
        return False
    local, domain = parts
    if not all(segment and _ATEXT.match(segment) for segment in local.split(".")):
        return False
    if not domain or len(domain) > 256 or _DOMAIN_CONTROL.search(domain):
        return False
    segments = domain.lower().split(".")
    if len(segments) < 2 or any(not segment or len(segment) > 63 for segment in segments):
        return False
    return all(_DOMAIN_SEGMENT.match(segment) for segment in segments[:-1]) and bool(
        _TLD_SEGMENT.match(segments[-1])
    )


def _email_rule(value: str, path: Path, messages: Messages) -> Report | None:
    """Refuse a malformed address."""
    if is_email(value):
        return None
    return Report("string.email", path, f"{label(path)} must be a valid email")


_STATUSES = Arr(items=Str(valid=BUILD_STATUSES))
_ADDRESS = Str(rule=_email_rule)
_ADDRESSES = Arr(items=_ADDRESS, min=1)
_CHANNEL = Str(required=True)
_CHANNELS = Arr(items=_CHANNEL, min=1)
SLACK_SETTINGS = Obj(
    keys={
        "slack": Alt(
            options=[
                Obj(
                    keys={
                        "channels": _CHANNELS,
                        "statuses": _STATUSES,
                        "message": Alt(
                            options=[
                                Obj(
                                    keys={
                                        "default": Str(),
                                        "success": Str(),
                                        "failure": Str(),
                                        "unfurl_links": Bool(),
                                    }
                                ),
                                Str(),
                            ]
                        ),
                        "minimized": Bool(),
                    }
                ),
                _CHANNELS,
                _CHANNEL,
            ],
            required=True,
        )
    },
    unknown=True,
)
EMAIL_SETTINGS = Obj(
    keys={
        "email": Alt(
            options=[
                Obj(keys={"addresses": _ADDRESSES, "statuses": _STATUSES}),
                _ADDRESS,
                _ADDRESSES,
            ],
            required=True,
        )
    },
    unknown=True,
)
_NOTIFIERS: tuple[tuple[str, Schema], ...] = (("slack", SLACK_SETTINGS), ("email", EMAIL_SETTINGS))


def notification_errors(jobs: dict[str, dict[str, Any]]) -> list[str]:
    """Return ``<job> <message>`` for each job whose slack or email settings are malformed."""
    errors = []
    for name, job in jobs.items():
        settings = job.get("settings")
        if not isinstance(settings, dict):
            continue
        for key, schema in _NOTIFIERS:
            if key in settings:
                _, reports = validate(schema, settings, abort_early=True)
                if reports:
                    errors.append(f"{name} {reports[0].message}")
    return errors
