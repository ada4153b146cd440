"""POST /v4/webhooks/local: pushes reported by the post-receive hook of a local repository."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pipelines.api.errors import error_response
from scm.services import HookRejected, handle_local_hook
from scm.signing import SIGNATURE_HEADER

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
