"""Status badges as small SVG images, in the shields.io look Screwdriver's badges have.

A badge is fetched by image proxies and README renderers that send no credentials, so a public
pipeline's badges need none; a private pipeline's are shown only to those who may read it and
are never stored by shared caches.
"""

from __future__ import annotations

from html import escape

from django.http import HttpResponse

from builds.models import Build
from pipelines.models import Event, Job, Pipeline

# Shared caches (an image proxy) may keep a public badge this long; browsers revalidate.
PUBLIC_MAX_AGE = 60

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


def pipeline_status(pipeline: Pipeline) -> str:
    """What the pipeline badge says: its latest event's status."""
    event = Event.objects.filter(pipeline=pipeline).order_by("-id").only("status").first()
    return event.status if event else "unknown"


def job_status(job: Job) -> str:
    """What a job badge says: its latest build's status."""
    build = Build.objects.filter(job=job).order_by("-id").only("status").first()
    return build.status if build else "unknown"


def pipeline_badge(pipeline: Pipeline) -> HttpResponse:
    """The pipeline's badge as a response."""
    return svg_response(
        badge_svg(pipeline.name, pipeline_status(pipeline)), public=pipeline.is_public
    )


def job_badge(job: Job) -> HttpResponse:
    """A job's badge as a response; `job.pipeline` must be loaded."""
    pipeline = job.pipeline
    return svg_response(
        badge_svg(f"{pipeline.name}:{job.name}", job_status(job)), public=pipeline.is_public
    )


def svg_response(text: str, *, public: bool) -> HttpResponse:
    """An SVG that runs nothing even when opened on its own, cached by who may read it."""
    response = HttpResponse(text, content_type="image/svg+xml; charset=utf-8")
    if public:
        response["Cache-Control"] = f"public, max-age={PUBLIC_MAX_AGE}, must-revalidate"
    else:
        response["Cache-Control"] = "private, no-cache"
        response["Vary"] = "Cookie, Authorization"
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response
