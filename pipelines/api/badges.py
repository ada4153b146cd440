"""Status badges as small SVG images, in the shields.io look Screwdriver's badges have."""

from __future__ import annotations

from html import escape

COLOURS = {
    "success": "#4c1",
    "failure": "#e05d44",
    "aborted": "#9f9f9f",
    "running": "#007ec6",
    "in_progress": "#007ec6",
    "queued": "#dfb317",
    "unknown": "#9f9f9f",
}


def _width(text: str) -> int:
    # A fixed advance per character keeps the badge readable without font metrics.
    return 7 * len(text) + 10


def badge_svg(label: str, status: str) -> str:
    """An SVG badge `label | status`, coloured by status; both texts are escaped."""
    message = status.lower().replace("_", " ")
    colour = COLOURS.get(status.lower(), "#9f9f9f")
    left, right = _width(label), _width(message)
    total = left + right
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{escape(label)}: {escape(message)}">'
        f"<title>{escape(label)}: {escape(message)}</title>"
        f'<rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,sans-serif" font-size="11">'
        f'<text x="{left / 2}" y="14">{escape(label)}</text>'
        f'<text x="{left + right / 2}" y="14">{escape(message)}</text>'
        "</g></svg>"
    )
