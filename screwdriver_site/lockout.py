"""What a sign-in refused by the failed-sign-in limit (django-axes) gets: how long to wait.

Under /v4 the answer is Screwdriver's JSON error shape; elsewhere the sign-in page's look.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

from screwdriver_site.errors import API_PREFIX

STATUS = 429


def wait_in_words(minutes: float) -> str:
    """The cool-off as a person reads it: "15 minutes", "1 minute", "30 seconds"."""
    if minutes < 1:
        seconds = max(math.ceil(minutes * 60), 1)
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    whole = math.ceil(minutes)
    return f"{whole} minute{'s' if whole != 1 else ''}"


def lockout_message() -> str:
    wait = wait_in_words(settings.SD_LOGIN_COOLOFF_MINUTES)
    return (
        f"Too many failed sign-ins for this account from your address: wait {wait}, then try again."
    )


def lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """django-axes' AXES_LOCKOUT_CALLABLE: a 429 that says how long to wait."""
    message = lockout_message()
    response: HttpResponse
    if request.path.startswith(API_PREFIX):
        response = JsonResponse(
            {"statusCode": STATUS, "error": "Too Many Requests", "message": message},
            status=STATUS,
        )
    else:
        response = TemplateResponse(request, "429.html", {"message": message}, status=STATUS)
        response.render()
    response["Retry-After"] = str(math.ceil(settings.SD_LOGIN_COOLOFF_MINUTES * 60))
    return response
