"""WebSocket routes of the builds app, each with its own guard.

The build page's socket is a browser's: its session cookie signs it in, so the page's origin
must be this server's. The launcher's log socket carries the build token in its
`Authorization` header, which no page can set: it needs no cookie and no origin.
"""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from builds.consumers import BuildConsumer, LauncherLogConsumer

websocket_urlpatterns = [
    path(
        "ws/builds/<id:build_id>/",
        AllowedHostsOriginValidator(AuthMiddlewareStack(BuildConsumer.as_asgi())),
    ),
    path("v4/builds/<id:build_id>/logs/socket", LauncherLogConsumer.as_asgi()),
]
