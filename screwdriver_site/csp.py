"""A Content-Security-Policy on every HTML page: only our own scripts, styles and frames.

Django 5.2 has no CSP of its own. Our pages carry no inline script, event handler or style
attribute (the browser tests listen for a violation on every page they open), so the policy
holds in every mode; SD_CSP replaces it for an installation that needs another.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"


class ContentSecurityPolicyMiddleware:
    """Adds settings.SD_CSP to each HTML response that does not set a policy of its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.SD_CSP
        content_type = response.get("Content-Type", "")
        # Django's debug pages (SD_DEBUG only) style and script themselves inline.
        debug_page = settings.DEBUG and response.status_code >= 400
        html = content_type.startswith("text/html")
        if policy and html and not debug_page and HEADER not in response:
            response[HEADER] = policy
        return response
