"""OpenAPI details drf-spectacular cannot infer for views outside pipelines/api."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view


class LocalHookSchema(OpenApiViewExtension):  # type: ignore[no-untyped-call]
    """POST /v4/webhooks/local: a signed body from a local repository's post-receive hook."""

    target_class = "scm.api.views.LocalHookView"

    def view_replacement(self) -> Any:
        @extend_schema_view(
            post=extend_schema(
                request={"application/json": OpenApiTypes.OBJECT},
                responses={200: OpenApiTypes.OBJECT, 202: OpenApiTypes.OBJECT},
                auth=[],
            )
        )
        class Described(self.target_class):  # type: ignore[name-defined,misc]
            pass

        return Described


class WebhookSchema(LocalHookSchema):  # type: ignore[no-untyped-call]
    """POST /v4/webhooks: a signed delivery from GitHub."""

    target_class = "scm.api.views.WebhookView"
