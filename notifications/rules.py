"""Who hears about a build, and when: a job's `settings.email` / `settings.slack` and the meta
that overrides them, read as Screwdriver's notifiers read them.

- `email`: an address, a list, or `{addresses, statuses}`; `slack`: a channel, a list, or
  `{channels, statuses, message, minimized}`. Without `statuses`, only FAILURE is sent.
- FIXED: when FAILURE is watched, a SUCCESS whose job's previous result was a FAILURE is sent
  as FIXED (and a SUCCESS is still sent when SUCCESS alone is watched).
- Meta, job by job (`<job>` is the build's job name): `notification.slack.<job>.channels`
  (comma-separated) replaces the channels, `notification.slack.<job>.minimized` the format,
  `notification.slack.<job>.message` or else `notification.slack.message` adds a line;
  `notification.email.<job>.addresses` (comma-separated) replaces the addresses, which
  Screwdriver's email notifier does not offer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipelines.config.notifications import is_email

DEFAULT_STATUSES = frozenset({"FAILURE"})
FIXED = "FIXED"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
# A Slack channel name is at most 80 characters; a longer value is no channel.
MAX_CHANNEL = 80
# No build names more recipients than this on one channel.
MAX_RECIPIENTS = 50


@dataclass(frozen=True)
class EmailRule:
    addresses: tuple[str, ...]
    statuses: frozenset[str]


@dataclass(frozen=True)
class SlackRule:
    channels: tuple[str, ...]
    statuses: frozenset[str]
    minimized: bool = False
    message: str | dict[str, Any] = ""


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _statuses(value: Any) -> frozenset[str]:
    if not isinstance(value, list):
        return DEFAULT_STATUSES
    return frozenset(item for item in value if isinstance(item, str))


def email_rule(settings: Any) -> EmailRule | None:
    """The job's email settings, or None when it has none."""
    value = settings.get("email") if isinstance(settings, dict) else None
    if isinstance(value, dict):
        addresses, statuses = _strings(value.get("addresses")), _statuses(value.get("statuses"))
    else:
        addresses, statuses = _strings(value), DEFAULT_STATUSES
    addresses = [a for a in addresses if is_email(a)]
    return EmailRule(tuple(dict.fromkeys(addresses)), statuses) if addresses else None


def slack_rule(settings: Any) -> SlackRule | None:
    """The job's Slack settings, or None when it has none."""
    value = settings.get("slack") if isinstance(settings, dict) else None
    if isinstance(value, dict):
        message = value.get("message")
        rule = SlackRule(
            channels=tuple(_strings(value.get("channels"))),
            statuses=_statuses(value.get("statuses")),
            minimized=value.get("minimized") is True,
            message=message if isinstance(message, str | dict) else "",
        )
    else:
        rule = SlackRule(channels=tuple(_strings(value)), statuses=DEFAULT_STATUSES)
    channels = tuple(dict.fromkeys(c.strip() for c in rule.channels if _is_channel(c.strip())))
    return SlackRule(channels, rule.statuses, rule.minimized, rule.message) if channels else None


def _is_channel(name: str) -> bool:
    return 0 < len(name) <= MAX_CHANNEL and name.isprintable()


def notice_status(build_status: str, watched: Iterable[str], *, fixed: bool) -> str | None:
    """What a notice of ``build_status`` says (the status, or FIXED), or None: not sent."""
    statuses = set(watched)
    if fixed:
        statuses.add(FIXED)
    said = FIXED if fixed and build_status == SUCCESS and FAILURE in statuses else build_status
    return said if said in statuses else None


def _reach(meta: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(meta, dict):
            return None
        meta = meta.get(key)
    return meta


def _listed(value: Any) -> list[str] | None:
    """A comma-separated string (or a list of strings) as its non-blank items."""
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list):
        items = [item for item in value if isinstance(item, str)]
    else:
        return None
    return [item.strip() for item in items if item.strip()]


def meta_channels(meta: Any, job_name: str) -> tuple[str, ...] | None:
    """`notification.slack.<job>.channels`: the channels that replace the settings' ones."""
    listed = _listed(_reach(meta, "notification", "slack", job_name, "channels"))
    if listed is None:
        return None
    return tuple(dict.fromkeys(c for c in listed if _is_channel(c)))[:MAX_RECIPIENTS]


def meta_addresses(meta: Any, job_name: str) -> tuple[str, ...] | None:
    """`notification.email.<job>.addresses`: the addresses that replace the settings' ones."""
    listed = _listed(_reach(meta, "notification", "email", job_name, "addresses"))
    if listed is None:
        return None
    return tuple(dict.fromkeys(a for a in listed if is_email(a)))[:MAX_RECIPIENTS]


def meta_minimized(meta: Any, job_name: str, default: bool) -> bool:
    """`notification.slack.<job>.minimized` (true/false, or the strings `meta set` stores)."""
    value = _reach(meta, "notification", "slack", job_name, "minimized")
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return default


def slack_message(rule: SlackRule, meta: Any, job_name: str, status: str) -> str:
    """The line a Slack notice adds: the job's meta message, the build's, else the settings'."""
    for value in (
        _reach(meta, "notification", "slack", job_name, "message"),
        _reach(meta, "notification", "slack", "message"),
    ):
        if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value):
            return str(value)
    if isinstance(rule.message, dict):
        # Per outcome: `success` (FIXED too), `failure`, else `default`.
        outcome = "success" if status in (SUCCESS, FIXED) else status.lower()
        chosen = rule.message.get(outcome) or rule.message.get("default")
        return chosen if isinstance(chosen, str) else ""
    return rule.message


def unfurls_links(rule: SlackRule) -> bool | None:
    """The settings' `message.unfurl_links`, when they say."""
    if isinstance(rule.message, dict) and isinstance(rule.message.get("unfurl_links"), bool):
        return bool(rule.message["unfurl_links"])
    return None


def changed_files(meta: Any) -> list[str]:
    """`commit.changedFiles` of a build's or event's meta (comma-separated), as a list."""
    return _listed(_reach(meta, "commit", "changedFiles")) or []
