"""Bar charts of run and queue times, drawn on the server as SVG (no script, no CDN).

Each bar is one event or build: its queued time stacked under its run time, failed runs in
the failure colour and marked with a cross. Every text that reaches the SVG is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 28, 40
TICKS = 4


@dataclass(frozen=True)
class Bar:
    """One event or build: its label, seconds queued and running, and whether it failed."""

    label: str
    run: float
    queued: float
    failed: bool
    title: str
    href: str = ""


def duration_text(seconds: float) -> str:
    """Seconds as a short reading: 45s, 3m 20s, 1h 5m."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60}s" if seconds % 60 else f"{seconds // 60}m"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m"


# Axis maxima that divide into readable quarters: 15 s, 30 s, 1 m, 2 m 30 s, 5 m, ...
NICE_TOPS = (60, 120, 240, 600, 1200, 2400, 3600, 7200, 14400, 21600, 43200, 86400)


def nice_top(value: float) -> float:
    """A round axis maximum at or above ``value`` (seconds)."""
    for top in NICE_TOPS:
        if top >= value:
            return float(top)
    return float(math.ceil(value / 86400) * 86400)


def bar_chart(bars: Sequence[Bar], *, title: str) -> SafeString:
    """An SVG of ``bars`` (oldest first) with axes, a legend and a title per bar."""
    if not bars:
        return format_html('<p class="muted">No finished runs to chart for {}.</p>', title)
    top = nice_top(max(b.run + b.queued for b in bars))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(bars)
    bar_w = round(max(slot * 0.7, 1.0), 1)

    def y(seconds: float) -> float:
        return round(TOP + plot_h - plot_h * seconds / top, 1)

    grid = format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" class="chart-grid"/>'
        '<text x="{}" y="{}" class="chart-tick" text-anchor="end">{}</text>',
        (
            (LEFT, WIDTH - RIGHT, y(v), y(v), LEFT - 6, round(y(v) + 4, 1), duration_text(v))
            for v in (top * i / TICKS for i in range(TICKS + 1))
        ),
    )
    every = max(1, math.ceil(len(bars) / 12))  # at most a dozen labels under the axis
    parts = []
    for i, bar in enumerate(bars):
        x = round(LEFT + slot * i + (slot - bar_w) / 2, 1)
        run_class = "chart-failed" if bar.failed else "chart-run"
        shapes = format_html(
            "<title>{}</title>"
            '<rect x="{}" y="{}" width="{}" height="{}" class="chart-queued"/>'
            '<rect x="{}" y="{}" width="{}" height="{}" class="{}"/>',
            bar.title,
            x,
            y(bar.queued),
            bar_w,
            round(y(0) - y(bar.queued), 1),
            x,
            y(bar.queued + bar.run),
            bar_w,
            round(y(bar.queued) - y(bar.queued + bar.run), 1),
            run_class,
        )
        if bar.failed:
            shapes += format_html(
                '<text x="{}" y="{}" class="chart-mark" text-anchor="middle">✕</text>',
                round(x + bar_w / 2, 1),
                round(y(bar.queued + bar.run) - 3, 1),
            )
        if i % every == 0:
            shapes += format_html(
                '<text x="{}" y="{}" class="chart-tick" text-anchor="middle">{}</text>',
                round(x + bar_w / 2, 1),
                HEIGHT - BOTTOM + 16,
                bar.label,
            )
        group = (
            format_html('<a href="{}">{}</a>', bar.href, shapes)
            if bar.href
            else format_html("<g>{}</g>", shapes)
        )
        parts.append(group)
    legend = format_html(
        '<rect x="{}" y="6" width="10" height="10" class="chart-run"/>'
        '<text x="{}" y="15" class="chart-tick">run</text>'
        '<rect x="{}" y="6" width="10" height="10" class="chart-queued"/>'
        '<text x="{}" y="15" class="chart-tick">queued</text>'
        '<rect x="{}" y="6" width="10" height="10" class="chart-failed"/>'
        '<text x="{}" y="15" class="chart-tick">failed ✕</text>',
        LEFT,
        LEFT + 14,
        LEFT + 60,
        LEFT + 74,
        LEFT + 136,
        LEFT + 150,
    )
    axis = format_html(
        '<line x1="{}" x2="{}" y1="{}" y2="{}" class="chart-axis"/>'
        '<line x1="{}" x2="{}" y1="{}" y2="{}" class="chart-axis"/>',
        LEFT,
        WIDTH - RIGHT,
        TOP + plot_h,
        TOP + plot_h,
        LEFT,
        LEFT,
        TOP,
        TOP + plot_h,
    )
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}" '
        'xmlns="http://www.w3.org/2000/svg"><title>{}</title>{}{}{}{}</svg>',
        WIDTH,
        HEIGHT,
        title,
        title,
        grid,
        axis,
        legend,
        mark_safe("".join(str(p) for p in parts)),  # noqa: S308 - each part is format_html's
    )
