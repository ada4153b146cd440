"""POST /v4/webhooks (GitHub, GitLab) and /v4/webhooks/local (a local repo's post-receive hook)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scm.services import HookRejected, handle_local_hook
from scm.signing import SIGNATURE_HEADER
from scm.webhooks import WebhookRejected, receive_github, receive_gitlab
from screwdriver_site.api.errors import error_response

MAX_BODY_BYTES = 64 * 1024


class LocalHookView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    def post(self, request: Request) -> Response:
        body = request.body
        if len(body) > MAX_BODY_BYTES:
            return error_response(413, "The hook body is too large.")
        try:
            outcome = handle_local_hook(body=body, signature=request.headers.get(SIGNATURE_HEADER))
        except HookRejected as exc:
            return error_response(401, str(exc))
        return Response({"events": outcome.events}, status=202 if outcome.events else 200)


class WebhookView(APIView):
    """SCM deliveries: verified and recorded here, acted on by the worker."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    def post(self, request: Request) -> Response:
        limit = settings.SD_WEBHOOK_MAX_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return error_response(413, f"The delivery is larger than {limit} bytes.")
        try:
            body = request.body
        except RequestDataTooBig:
            return error_response(413, f"The delivery is larger than {limit} bytes.")
        if len(body) > limit:
            return error_response(413, f"The delivery is larger than {limit} bytes.")
        headers = request.headers
        try:
            if "X-Gitlab-Event" in headers:
                # Idempotency-Key stays the same when GitLab retries a delivery (GitLab 17.4+).
                received = receive_gitlab(
                    body=body,
                    token=headers.get("X-Gitlab-Token"),
                    event_name=headers.get("X-Gitlab-Event"),
                    delivery_id=headers.get("Idempotency-Key")
                    or headers.get("X-Gitlab-Event-UUID"),
                )
            elif "X-GitHub-Event" in headers:
                received = receive_github(
                    body=body,
                    signature=headers.get("X-Hub-Signature-256"),
                    event_name=headers.get("X-GitHub-Event"),
                    delivery_id=headers.get("X-GitHub-Delivery"),
                )
            else:
                return error_response(
                    400,
                    "Only GitHub (X-GitHub-Event) and GitLab (X-Gitlab-Event) deliveries "
                    "are accepted here.",
                )
        except WebhookRejected as exc:
            return error_response(exc.status, exc.message)
        delivery = received.delivery
        return Response(
            {"deliveryId": delivery.delivery_id, "outcome": delivery.outcome},
            status=202 if received.queued else 200,
        )
