"""What a notice says: the email (subject, text, HTML) and the Slack message of a build status.

Everything that comes from a repository or a build (names, commit messages, meta) is escaped
for where it lands: HTML by Django's templates, Slack text by `slack_escape`. The one exception
is the extra line a pipeline's own people write (the settings' `message`, a branch build's
meta): as in Screwdriver, its mentions and links reach Slack (`slack_markup`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.template.loader import render_to_string

# Slack's attachment colours and emoji, as Screwdriver's notifier picks them.
_SLACK_COLORS = {
    "ABORTED": "danger",
    "CREATED": "#0b548c",
    "FAILURE": "danger",
    "QUEUED": "#0F69FF",
    "RUNNING": "#0F69FF",
    "SUCCESS": "good",
    "BLOCKED": "#ccc",
    "UNSTABLE": "#ffd333",
    "COLLAPSED": "#f2f2f2",
    "FIXED": "good",
    "FROZEN": "#acd9ff",
}
_SLACK_EMOJI = {
    "ABORTED": ":cloud:",
    "CREATED": ":clock11:",
    "FAILURE": ":umbrella:",
    "QUEUED": ":cyclone:",
    "RUNNING": ":runner:",
    "SUCCESS": ":sunny:",
    "BLOCKED": ":lock:",
    "UNSTABLE": ":foggy:",
    "COLLAPSED": ":arrow_up:",
    "FIXED": ":sunny:",
    "FROZEN": ":snowman:",
}
_EMAIL_COLORS = {"FAILURE": "#c01c28", "SUCCESS": "#1e7b34", "FIXED": "#1e7b34"}
# Slack shows this much of a commit message, as Screwdriver's notifier does.
COMMIT_MESSAGE_CUT = 150
# A meta message longer than this is cut: Slack refuses texts past 40,000 characters.
MAX_SLACK_MESSAGE = 3000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# Slack's control sequences: `<target>` or `<target|label>`.
_SLACK_SEQUENCE = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
# The targets a message line may keep: a user (`@U024BE7LH`, or a name as the guide's
# `<@yoshwata>`), a channel (`#C024BE7LH`), a user group (`!subteam^S123`), the special
# mentions, and web or mail links.
_SLACK_TARGET = re.compile(
    r"@[A-Za-z0-9._-]+|#[A-Z0-9]+|!subteam\^[A-Z0-9]+|!(?:here|channel|everyone)"
    r"|(?:https?://|mailto:)[^\s<>|]+"
)


@dataclass(frozen=True)
class BuildFacts:
    """What a notice tells about a build; every string may come from a user."""

    build_id: int
    status: str  # what the notice says: the build's status, or FIXED
    pipeline_id: int
    repo_name: str
    root_dir: str
    job_name: str
    sha: str
    commit_message: str
    commit_url: str  # "" unless http(s)
    cause: str
    build_url: str
    pipeline_url: str
    changed_files: tuple[str, ...] = ()


def one_line(text: str) -> str:
    """Text fit for a header or a one-line field: control characters become spaces."""
    return _CONTROL.sub(" ", text).strip()


def slack_escape(text: str) -> str:
    """Text Slack shows as written: `&`, `<` and `>` escaped, so no mention, link or command."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_markup(text: str) -> str:
    """Text whose Slack mentions (`<@U123>`, `<!here>`, `<#C123>`, `<!subteam^S1>`) and web
    links stay as Slack reads them, and everything else is shown as written."""
    shown: list[str] = []
    end = 0
    for found in _SLACK_SEQUENCE.finditer(text):
        shown.append(slack_escape(text[end : found.start()]))
        target, label = found.group(1), found.group(2)
        if _SLACK_TARGET.fullmatch(target):
            # A link's `&` is sent as `&amp;`, as Slack asks, and read back as `&`.
            shown.append(
                f"<{slack_escape(target)}" + (f"|{slack_escape(label)}" if label else "") + ">"
            )
        else:
            shown.append(slack_escape(found.group(0)))
        end = found.end()
    shown.append(slack_escape(text[end:]))
    return "".join(shown)


def email_subject(facts: BuildFacts) -> str:
    """`FAILURE - Screwdriver org/repo main #12`, Screwdriver's subject (folder before #)."""
    parts = [f"{facts.status} - Screwdriver", facts.repo_name, facts.job_name, facts.root_dir]
    return one_line(" ".join(part for part in parts if part) + f" #{facts.build_id}")


def email_text(facts: BuildFacts) -> str:
    """The plain-text part of the email."""
    first = facts.commit_message.splitlines()[0] if facts.commit_message else ""
    lines = [
        f"Build status: {facts.status}",
        f"Build link: {facts.build_url}",
        f"Pipeline: {facts.repo_name}, job {facts.job_name}",
        f"Commit: {facts.sha[:7]} {one_line(first)}",
    ]
    if facts.cause:
        lines.append(f"Cause: {one_line(facts.cause)}")
    if facts.changed_files:
        lines += ["Changed files:", *(f"  {one_line(name)}" for name in facts.changed_files)]
    return "\n".join(lines) + "\n"


def email_html(facts: BuildFacts) -> str:
    """The HTML part of the email (Django's template escapes every value)."""
    return render_to_string(
        "notifications/email.html",
        {"facts": facts, "color": _EMAIL_COLORS.get(facts.status, "#5b6473")},
    )


def email_content(facts: BuildFacts) -> dict[str, str]:
    return {"subject": email_subject(facts), "text": email_text(facts), "html": email_html(facts)}


def _link(url: str, text: str) -> str:
    # Slack ends a link's address at its first `|`: one inside the address is percent-encoded.
    return f"<{slack_escape(url.replace('|', '%7C'))}|{slack_escape(text)}>"


def slack_content(
    facts: BuildFacts,
    *,
    minimized: bool,
    message: str,
    unfurl_links: bool | None,
    mentions: bool = False,
) -> dict[str, Any]:
    """chat.postMessage's fields but `channel`: Screwdriver's full or minimized format.

    `mentions`: the extra line `message` comes from the pipeline's people, and its mentions
    and links are kept (`slack_markup`); otherwise it is shown as written.
    """
    status = facts.status
    text = (
        f"*{status}* {_SLACK_EMOJI.get(status, '')} "
        f"{_link(facts.pipeline_url, f'{facts.repo_name} {facts.job_name}')}"
    )
    if facts.root_dir:
        text += f"\n*Source Directory:* {slack_escape(facts.root_dir)}"
    if message:
        line = message[:MAX_SLACK_MESSAGE]
        text += "\n" + (slack_markup(line) if mentions else slack_escape(line))
    color = _SLACK_COLORS.get(status, "#ccc")
    if minimized:
        attachment: dict[str, Any] = {
            "fallback": "",
            "color": color,
            "fields": [{"value": _link(facts.build_url, f"#{facts.build_id}"), "short": True}],
        }
    else:
        commit = facts.commit_message
        if len(commit) > COMMIT_MESSAGE_CUT:
            commit = commit[:COMMIT_MESSAGE_CUT] + "..."
        sha = (
            _link(facts.commit_url, facts.sha[:6])
            if facts.commit_url
            else slack_escape(facts.sha[:6])
        )
        attachment = {
            "fallback": "",
            "color": color,
            "title": f"#{facts.build_id}",
            "title_link": facts.build_url,
            "text": f"{slack_escape(commit)} ({sha})\n{slack_escape(facts.cause)}",
        }
    content: dict[str, Any] = {"text": text, "attachments": [attachment]}
    if unfurl_links is not None:
        content["unfurl_links"] = unfurl_links
    return content
