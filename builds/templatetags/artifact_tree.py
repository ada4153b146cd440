"""`{% artifact_tree %}`: the Artifacts tab's tree, written in one pass.

A build may publish thousands of files: Django's template loop takes a quarter of a second
over two thousand of them, string formatting a few milliseconds. Every name is escaped here
(html.escape, quotes included) and every path in a link is quoted (TreeRow.quoted).
"""

from __future__ import annotations

from html import escape

from django import template
from django.utils.safestring import SafeString, mark_safe

from builds.artifact_reads import TreeRow

register = template.Library()

_CLOSE = "</ul></details></li>"
_UNITS = ("KB", "MB", "GB", "TB", "PB")


def size_text(size: int) -> str:
    """A size as people read it, as Django's filesizeformat writes it: 980 bytes, 2.0 KB."""
    if size < 1024:
        return f"{size}\xa0byte{'' if size == 1 else 's'}"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            break
    return f"{value:.1f}\xa0{unit}"


@register.simple_tag
def artifact_tree(rows: list[TreeRow], page_base: str, api_base: str) -> SafeString:
    """The rows as nested lists: a folder is a <details> whose list its last line closes."""
    page, api = escape(page_base), escape(api_base)
    parts: list[str] = []
    for row in rows:
        name, quoted, size = escape(row.name), escape(row.quoted), size_text(row.size)
        if row.is_folder:
            parts.append(
                f'<li class="tree-folder"><details{" open" if row.expanded else ""}><summary>'
                f'<span class="tree-name">{name}/</span> <span class="size">{size}</span> '
                f'<a class="folder-zip" href="{api}{quoted}?dir=true&amp;type=download" '
                f'title="Download {name} as zip">zip</a></summary><ul>'
            )
        elif row.selected:
            parts.append(
                f'<li class="tree-file selected"><a href="{page}{quoted}" aria-current="page">'
                f'{name}</a> <span class="size">{size}</span></li>'
            )
        else:
            parts.append(
                f'<li class="tree-file"><a href="{page}{quoted}">{name}</a> '
                f'<span class="size">{size}</span></li>'
            )
        parts.append(_CLOSE * len(row.closes))
    return mark_safe("".join(parts))  # noqa: S308 - every value above is escaped
