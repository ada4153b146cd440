"""Screwdriver's error shape for every API error: {statusCode, error, message}."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from builds.logs import LogBatchError
from builds.services import TransitionError
from pipelines.services import PipelineError


def _flatten(detail: Any, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        out: list[str] = []
        for key, value in detail.items():
            label = "" if key == "non_field_errors" else f"{prefix}{key}"
            out += _flatten(value, f"{label}." if label else "")
        return out
    if isinstance(detail, list):
        return [m for item in detail for m in _flatten(item, prefix)]
    text = str(detail)
    return [f"{prefix[:-1]}: {text}" if prefix else text]


def error_response(status: int, message: str) -> Response:
    return Response(
        {"statusCode": status, "error": HTTPStatus(status).phrase, "message": message},
        status=status,
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, PipelineError):
        return error_response(exc.status, exc.message)
    if isinstance(exc, TransitionError):
        return error_response(409, str(exc))
    if isinstance(exc, LogBatchError):
        return error_response(exc.status, str(exc))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    # Validation errors name each bad field; other errors carry one sentence already.
    if isinstance(exc, exceptions.ValidationError):
        message = "; ".join(_flatten(response.data))
    else:
        message = str(getattr(exc, "detail", exc))
    response.data = {
        "statusCode": response.status_code,
        "error": HTTPStatus(response.status_code).phrase,
        "message": message,
    }
    return response
