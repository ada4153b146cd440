"""Template names in URLs: ``ns%2Fname`` keeps its encoded slash until the router has matched.

Screwdriver's clients put a namespaced template name in one path segment (``ns%2Ftpl``). ASGI
servers (daphne) and WSGI servers hand Django a decoded path, where ``templates/ns/tpl`` could
be the template ``ns/tpl`` or version ``tpl`` of ``ns``. The middleware rebuilds the path of
``/v4/templates/...`` from the server's undecoded one (ASGI ``raw_path``, or ``RAW_URI`` /
``REQUEST_URI`` under WSGI) with each encoded slash left as ``%2F``; the ``<template:...>``
converter then turns it back into a slash.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse

PREFIX = "/v4/templates/"
_ENCODED_SLASH = re.compile("%2f", re.IGNORECASE)


class TemplateNameConverter:
    """``<template:name>``: ``name`` or ``namespace%2Fname`` (a bare ``/`` never matches)."""

    regex = r"[\w-]{1,64}(?:%2F[\w-]{1,64})?"

    def to_python(self, value: str) -> str:
        return value.replace("%2F", "/")

    def to_url(self, value: str) -> str:
        return value.replace("/", "%2F")


def encoded_path(request: HttpRequest) -> str | None:
    """The request's path as the client sent it (before percent-decoding), if the server says."""
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict) and isinstance(scope.get("raw_path"), bytes):
        return scope["raw_path"].decode("latin-1")
    for key in ("RAW_URI", "REQUEST_URI"):
        raw = request.META.get(key)
        if isinstance(raw, str) and raw:
            return raw.split("?", 1)[0]
    return None


def routed_path(path_info: str, raw: str | None) -> str:
    """`path_info` with the slashes the client encoded put back as ``%2F``."""
    if raw is None or not path_info.startswith(PREFIX) or not _ENCODED_SLASH.search(raw):
        return path_info
    kept = unquote(_ENCODED_SLASH.sub("%252F", raw))
    # Only when the raw path is the same request (no prefix, no proxy rewriting in between).
    return kept if kept.replace("%2F", "/") == path_info else path_info


class EncodedSlashMiddleware:
    """Route ``/v4/templates/ns%2Fname/...`` on the path the client sent."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(PREFIX):
            request.path_info = routed_path(request.path_info, encoded_path(request))
        return self.get_response(request)
