"""The ``settings.email`` and ``settings.slack`` shapes the reference's notifiers accept."""

from __future__ import annotations

import pathlib
import re
import unicodedata
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
# IANA's list of top-level domains, at the version the reference's Joi ships (its header
# line says which): Joi refuses an address whose last domain label is not on it.
TLDS_FILE = pathlib.Path(__file__).with_name("tlds-alpha-by-domain.txt")
TOP_LEVEL_DOMAINS = frozenset(
    line.strip().lower()
    for line in TLDS_FILE.read_text(encoding="ascii").splitlines()
    if line.strip() and not line.startswith("#")
)


def _js_length(text: str) -> int:
    """Return the length JavaScript gives a string (UTF-16 code units)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _ascii_host(domain: str) -> str | None:
    """Return the domain as a URL's host writes it (IDNA labels), or None where it cannot be.

    The reference converts a non-ASCII domain through a URL host and keeps it unchanged when
    that fails, which then always fails the ASCII label rules; so a failure is a refusal.
    """
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def is_email(value: str) -> bool:
    """Return whether value is an address Joi's ``string().email()`` accepts.

    Its rules as the reference pins them: a dot-atom local part (any non-ASCII character
    allowed), at most 254 characters and a local part of at most 64 UTF-8 bytes, a domain
    of at least two labels whose last one is on IANA's list of top-level domains.
    """
    if not value:
        return False
    if not value.isascii():
        value = unicodedata.normalize("NFC", value)
    parts = value.split("@")
    if len(parts) != 2 or not parts[0]:
        return False
    local, domain = parts
    if _js_length(value) > 254 or len(local.encode("utf-8", "surrogatepass")) > 64:
        return False
    for segment in local.split("."):
        if not segment or not all(char >= "\x80" or _ATEXT.match(char) for char in segment):
            return False
    if not domain or _js_length(domain) > 256 or _DOMAIN_CONTROL.search(domain):
        return False
    host = _ascii_host(domain)
    if host is None:
        return False
    segments = host.split(".")
    if len(segments) < 2 or segments[-1].lower() not in TOP_LEVEL_DOMAINS:
        return False
    if any(not segment or len(segment) > 63 for segment in segments):
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
