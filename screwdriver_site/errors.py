"""What a person or a client sees when a request fails: never a setting, never a traceback.

Under /v4 the answer is Screwdriver's JSON error shape; elsewhere a plain page. Django's debug
pages appear only with SD_DEBUG=true, and even then `CleansingFilter` hides every setting and
environment variable that can hold a credential, connection URLs included, and
`CleansingReporter` every credential in the request's query string (`?api_token=X`).
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.safestring import SafeString, mark_safe
from django.views import defaults
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from screwdriver_site.redaction import (
    REDACTED,
    is_credential,
    redact_query,
    redact_query_string,
    redact_text,
)

API_PREFIX = "/v4/"


class CleansingFilter(SafeExceptionReporterFilter):
    """Django's filter, also hiding database, Redis and other connection URLs and DSNs."""

    hidden_settings = re.compile(
        SafeExceptionReporterFilter.hidden_settings.pattern
        + "|DATABASE|REDIS|_URL|DSN|CREDENTIAL|CHANNEL_LAYERS|SLACK_WORKSPACES",
        flags=re.IGNORECASE,
    )

    def get_safe_request_meta(self, request: HttpRequest) -> dict[str, Any]:
        meta: dict[str, Any] = super().get_safe_request_meta(request)
        for name in ("QUERY_STRING", "REQUEST_URI", "RAW_URI"):
            if isinstance(meta.get(name), str):
                meta[name] = (
                    redact_query_string(meta[name])
                    if name == "QUERY_STRING"
                    else redact_query(meta[name])
                )
        return meta


class CleansingReporter(ExceptionReporter):
    """Django's error report, showing the request's address and GET with credentials redacted."""

    def get_traceback_data(self) -> dict[str, Any]:
        data: dict[str, Any] = super().get_traceback_data()
        if "request_GET_items" in data:
            data["request_GET_items"] = [
                (name, REDACTED if is_credential(name) else value)
                for name, value in data["request_GET_items"]
            ]
        if isinstance(data.get("request_insecure_uri"), str):
            data["request_insecure_uri"] = redact_query(data["request_insecure_uri"])
        for frame in data.get("frames", []):
            if "vars" not in frame:
                continue
            frame["vars"] = [
                (name, REDACTED if is_credential(name) else value) for name, value in frame["vars"]
            ]
        return data

    # What is left, such as a request's repr in a frame's variables, is text with an address.
    def get_traceback_html(self) -> SafeString:
        return mark_safe(redact_text(super().get_traceback_html()))  # noqa: S308 - Django's page

    def get_traceback_text(self) -> SafeString:
        return mark_safe(redact_text(super().get_traceback_text()))  # noqa: S308 - plain text


class WithoutTraceback(logging.Filter):
    """Log a refused request (bad Host, oversized body) as one line: it is not a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


class WithoutCredentials(logging.Filter):
    """A request's address in a log line (Django's `Not Found: /v4/...`) shows no credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_query(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def _api_error(status: int, message: str) -> JsonResponse:
    return JsonResponse(
        {"statusCode": status, "error": HTTPStatus(status).phrase, "message": message},
        status=status,
    )


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """400, or 413 for a body over the size this server reads."""
    if isinstance(exception, RequestDataTooBig | TooManyFieldsSent):
        message = "The request body is larger than this server accepts."
        if _is_api(request):
            return _api_error(413, message)
        response = defaults.bad_request(request, exception, template_name="413.html")
        response.status_code = 413
        return response
    if _is_api(request):
        return _api_error(
            400, "The request was refused: its Host header, form or encoding is not accepted."
        )
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _api_error(403, "You may not do this.")
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _api_error(404, "There is no such route: see /v4/documentation.")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return _api_error(500, "The server failed on this request; its log says why.")
    return defaults.server_error(request)
