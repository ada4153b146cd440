"""What a pull request build's meta asks to show on its pull request: a summary and checks.

Read in both of the forms people write them:

- the summary: `meta set meta.summary.KEY "text"` (Screwdriver's documented form) and
  `meta set summary.KEY "text"` give keyed lines, `__KEY__ - text`; `meta set summary "text"`
  (or `meta.summary "text"`) gives a plain line, shown above the keyed ones. A key written in
  both places shows `meta.summary`'s value.
- the extra statuses: `meta.status.NAME` and `status.NAME`, each a JSON string or an object;
  a name in both places takes `meta.status`'s.
- `meta.splitComments` or `splitComments`: one comment per line instead of one in all.

Pure code over the build's meta dictionary: the comment, the commit statuses and the pull
request page all read it here.
"""

from __future__ import annotations

from typing import Any

# The keyword of the plain (unkeyed) summary line, as a split comment.
PLAIN = ""


def _section(meta: Any, name: str) -> tuple[Any, Any]:
    """`name` at the top of the meta, then under its `meta` key (the documented place)."""
    if not isinstance(meta, dict):
        return None, None
    own = meta.get("meta")
    return meta.get(name), own.get(name) if isinstance(own, dict) else None


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value)


def summary_lines(meta: Any) -> dict[str, str]:
    """Keyword -> the summary line it shows (markdown, as the build wrote it), in order:
    the plain line first (keyword ""), then the keyed lines by key."""
    top, documented = _section(meta, "summary")
    plain = [t for value in (documented, top) if (t := _text(value)) is not None and t.strip()]
    keyed: dict[str, str] = {}
    for form in (top, documented):
        for key, value in form.items() if isinstance(form, dict) else ():
            if str(key) and (text := _text(value)) is not None:
                keyed[str(key)] = text
    lines = {PLAIN: "\n".join(dict.fromkeys(plain))} if plain else {}
    # By key: PostgreSQL's jsonb does not keep the order in which the build wrote the meta.
    for key in sorted(keyed):
        lines[key] = f"__{key}__ - {keyed[key]}"
    return lines


def splits_comments(meta: Any) -> bool:
    """Whether the build asked for one comment per summary line."""
    top, documented = _section(meta, "splitComments")
    return bool(documented or top)


def check_values(meta: Any) -> dict[str, Any]:
    """Name -> what the build wrote for the extra status NAME (parsed by the caller), by name."""
    top, documented = _section(meta, "status")
    values: dict[str, Any] = {}
    for form in (top, documented):
        if isinstance(form, dict):
            values.update({str(name): value for name, value in form.items()})
    return dict(sorted(values.items()))
